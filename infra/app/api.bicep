// The function app: a Flex Consumption plan (Linux, FC1) and the site, running Python 3.11 as the
// user-assigned identity. Every setting the app reads is set here; a setting added by hand in the
// portal is removed by the next `azd provision`.

@description('Function app name; the host name is <name>.azurewebsites.net.')
param name string

@description('Flex Consumption plan name.')
param planName string

@description('Region of the plan and the app.')
param location string

@description('Tags applied to both; the app also gets azd-service-name.')
param tags object = {}

@description('Resource ID of the user-assigned managed identity.')
param identityId string

@description('Client ID of the user-assigned managed identity.')
param identityClientId string

@description('Storage account of the host, the deployment package and the app\'s tables.')
param storageAccountName string

@description('Blob container Flex Consumption deploys the app package from.')
param deploymentContainerName string

@description('Application Insights resource (local authentication disabled).')
param applicationInsightsName string

@description('Key Vault URI, ending with a slash.')
param keyVaultUri string

@description('Whether the vault holds immy-client-secret.')
param immySecretStored bool

@minValue(40)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param maximumInstanceCount int = 40

@allowed([
  2048
  4096
])
@description('Memory of each instance, MB.')
param instanceMemoryMB int = 2048

@description('HALO_BASE_URL.')
param haloBaseUrl string

@description('HALO_TENANT (may be empty).')
param haloTenant string = ''

@description('HALO_CLIENT_ID.')
param haloClientId string

@description('HALO_SCOPE; empty: the setting is left out and the app asks for "all".')
param haloScope string = ''

@description('TAB_FRAME_ORIGINS.')
param frameOrigins string

@description('SYNC_SCHEDULE.')
param syncSchedule string

@description('Whether ImmyBot is configured; when not, no IMMY_* setting is written.')
param immyConfigured bool = false

@description('IMMY_BASE_URL.')
param immyBaseUrl string = ''

@description('IMMY_TENANT_ID.')
param immyTenantId string = ''

@description('IMMY_CLIENT_ID.')
param immyClientId string = ''

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

// Platform settings: host storage and telemetry, both by identity.
var platformSettings = [
  {
    name: 'AzureWebJobsStorage__accountName'
    value: storage.name
  }
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identityClientId
  }
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: appInsights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identityClientId};Authorization=AAD'
  }
]

// The app's own settings (shared/settings.py). Secrets are Key Vault references without a
// version, so a new secret version is picked up on restart or within 24 hours.
var appSettings = [
  {
    name: 'HALO_BASE_URL'
    value: haloBaseUrl
  }
  {
    name: 'HALO_TENANT'
    value: haloTenant
  }
  {
    name: 'HALO_CLIENT_ID'
    value: haloClientId
  }
  {
    name: 'HALO_CLIENT_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/halo-client-secret/)'
  }
  {
    name: 'TABLES_ENDPOINT'
    value: storage.properties.primaryEndpoints.table
  }
  {
    // DefaultAzureCredential (Table Storage) picks the user-assigned identity by this client ID.
    name: 'AZURE_CLIENT_ID'
    value: identityClientId
  }
  {
    name: 'SYNC_SCHEDULE'
    value: syncSchedule
  }
  {
    name: 'TAB_FRAME_ORIGINS'
    value: frameOrigins
  }
]

// Tuning settings at the app's own defaults, written out so they are visible and editable in one
// place; tests/test_infra.py keeps these names and shared/settings.py in step.
var tuningSettings = [
  {
    name: 'HALO_REQUESTS_PER_MINUTE'
    value: '50'
  }
  {
    name: 'HALO_BACKOFF_429_SECONDS'
    value: '30'
  }
  {
    name: 'HALO_PAGE_SIZE'
    value: '100'
  }
  {
    name: 'HALO_TIMEOUT_SECONDS'
    value: '30'
  }
  {
    name: 'HALO_READ_MODE'
    value: 'auto'
  }
  {
    name: 'TABLES_PREFIX'
    value: ''
  }
  {
    name: 'SYNC_MAX_DROP'
    value: '0.3'
  }
  {
    name: 'SYNC_CONFIRM_BY_REPEAT'
    value: 'false'
  }
  {
    // Below host.json functionTimeout (30 min): a run reads this long, then stops as resumable.
    name: 'SYNC_TIME_LIMIT_SECONDS'
    value: '1200'
  }
  {
    name: 'TAB_ALLOWED_GROUP'
    value: ''
  }
  {
    name: 'TAB_HALO_TIMEOUT_SECONDS'
    value: '2'
  }
  {
    name: 'TAB_DEADLINE_MS'
    value: '800'
  }
  {
    name: 'TAB_SOFTWARE_COMPUTERS'
    value: '25'
  }
  {
    name: 'IMMY_SCOPE'
    value: ''
  }
  {
    name: 'IMMY_AUTHORITY_HOST'
    value: 'https://login.microsoftonline.com'
  }
  {
    name: 'IMMY_TAGS'
    value: 'plan'
  }
  {
    name: 'IMMY_TAG_PREFIX'
    value: 'Halo: '
  }
  {
    name: 'IMMY_HALO_LINK_ID'
    value: ''
  }
  {
    name: 'IMMY_STALE_DAYS'
    value: '30'
  }
  // Asset population (docs/halopsa-setup.md step 5): off until the field ids are filled in.
  {
    name: 'ASSET_SYNC'
    value: 'off'
  }
  {
    name: 'ASSET_TYPE_ID'
    value: ''
  }
  {
    name: 'ASSET_NAME_FIELD'
    value: ''
  }
  {
    name: 'ASSET_ID_FIELD'
    value: ''
  }
  {
    name: 'ASSET_MARKER_FIELD'
    value: ''
  }
  {
    name: 'ASSET_SERIAL_FIELD'
    value: ''
  }
  {
    name: 'ASSET_UPDATE_MATCHED'
    value: 'false'
  }
  {
    name: 'ASSET_MAX_CREATES'
    value: '200'
  }
  {
    name: 'ASSET_WRITE_BATCH'
    value: '25'
  }
]

var haloScopeSettings = empty(haloScope) ? [] : [
  {
    name: 'HALO_SCOPE'
    value: haloScope
  }
]

// ImmyBot is all-or-nothing in the app: an empty IMMY_BASE_URL is a settings error, so when
// ImmyBot is not configured its settings are left out rather than written empty.
var immySettings = immyConfigured ? [
  {
    name: 'IMMY_BASE_URL'
    value: immyBaseUrl
  }
  {
    name: 'IMMY_TENANT_ID'
    value: immyTenantId
  }
  {
    name: 'IMMY_CLIENT_ID'
    value: immyClientId
  }
] : []

var immySecretSettings = (immyConfigured && immySecretStored) ? [
  {
    name: 'IMMY_CLIENT_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/immy-client-secret/)'
  }
] : []

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: concat(platformSettings, appSettings, tuningSettings, haloScopeSettings, immySettings, immySecretSettings)
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No publishing with user name and password: deployments (azd) authenticate with Entra ID.
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output uri string = 'https://${site.properties.defaultHostName}'
