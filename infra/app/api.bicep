// The function app: a Flex Consumption plan (Linux, FC1) and the site, running Python 3.11 as the
// user-assigned identity. Every setting the app reads is set here (the ones an admin may change from
// parameters); a setting added or changed by hand in the portal is undone by the next
// `azd provision`.

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

@description('Whether the vault holds halo-webhook-secret; when not, HALO_WEBHOOK_SECRET is not written and the webhook route answers 404.')
param webhookSecretStored bool = false

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

// Settings an admin may change: one parameter each, passed down from main.bicep (azd variable of
// the same name as the setting). Every default is the app's own (shared/settings.py); an empty
// value leaves the setting out, so the app uses that same default.

@description('HALO_SCOPE.')
param haloScope string = 'all'

@description('HALO_READ_MODE.')
@allowed([
  ''
  'auto'
  'report'
  'rest'
])
param haloReadMode string = 'auto'

@description('HALO_REQUESTS_PER_MINUTE.')
param haloRequestsPerMinute string = '50'

@description('HALO_PAGE_SIZE.')
param haloPageSize string = '100'

@description('HALO_TIMEOUT_SECONDS.')
param haloTimeoutSeconds string = '30'

@description('HALO_BACKOFF_429_SECONDS.')
param haloBackoff429Seconds string = '30'

@description('SYNC_MAX_DROP.')
param syncMaxDrop string = '0.3'

@description('SYNC_CONFIRM_BY_REPEAT.')
@allowed([
  ''
  'true'
  'false'
])
param syncConfirmByRepeat string = 'false'

@description('SYNC_TIME_LIMIT_SECONDS.')
param syncTimeLimitSeconds string = '1200'

@description('CHANGES_KEEP_DAYS.')
param changesKeepDays string = '90'

@description('TAB_ALLOWED_GROUP.')
param tabAllowedGroup string = ''

@description('TAB_HALO_TIMEOUT_SECONDS.')
param tabHaloTimeoutSeconds string = '2'

@description('TAB_DEADLINE_MS.')
param tabDeadlineMs string = '800'

@description('IMMY_SCOPE.')
param immyScope string = ''

@description('IMMY_AUTHORITY_HOST.')
param immyAuthorityHost string = 'https://login.microsoftonline.com'

@description('IMMY_TAGS.')
@allowed([
  ''
  'off'
  'plan'
  'apply'
])
param immyTags string = 'plan'

@description('IMMY_TAG_PREFIX.')
param immyTagPrefix string = 'Halo: '

@description('IMMY_HALO_LINK_ID.')
param immyHaloLinkId string = ''

@description('IMMY_STALE_DAYS.')
param immyStaleDays string = '30'

@description('ASSET_SYNC.')
@allowed([
  ''
  'off'
  'plan'
  'apply'
])
param assetSync string = 'off'

@description('ASSET_TYPE_ID.')
param assetTypeId string = ''

@description('ASSET_NAME_FIELD.')
param assetNameField string = ''

@description('ASSET_ID_FIELD.')
param assetIdField string = ''

@description('ASSET_MARKER_FIELD.')
param assetMarkerField string = ''

@description('ASSET_SERIAL_FIELD.')
param assetSerialField string = ''

@description('ASSET_UPDATE_MATCHED.')
@allowed([
  ''
  'true'
  'false'
])
param assetUpdateMatched string = 'false'

@description('ASSET_MAX_CREATES.')
param assetMaxCreates string = '200'

@description('ASSET_WRITE_BATCH.')
param assetWriteBatch string = '25'

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

// The settings an admin may change, from the parameters above. An empty parameter leaves its
// setting out and the app uses its own default: azd passes an unset variable to a parameter with a
// non-empty default as an empty string, not as that default.
var adminSettings = filter([
  {
    name: 'HALO_SCOPE'
    value: haloScope
  }
  {
    name: 'HALO_READ_MODE'
    value: haloReadMode
  }
  {
    name: 'HALO_REQUESTS_PER_MINUTE'
    value: haloRequestsPerMinute
  }
  {
    name: 'HALO_PAGE_SIZE'
    value: haloPageSize
  }
  {
    name: 'HALO_TIMEOUT_SECONDS'
    value: haloTimeoutSeconds
  }
  {
    name: 'HALO_BACKOFF_429_SECONDS'
    value: haloBackoff429Seconds
  }
  {
    name: 'SYNC_MAX_DROP'
    value: syncMaxDrop
  }
  {
    name: 'SYNC_CONFIRM_BY_REPEAT'
    value: syncConfirmByRepeat
  }
  {
    name: 'SYNC_TIME_LIMIT_SECONDS'
    value: syncTimeLimitSeconds
  }
  {
    name: 'CHANGES_KEEP_DAYS'
    value: changesKeepDays
  }
  {
    name: 'TAB_ALLOWED_GROUP'
    value: tabAllowedGroup
  }
  {
    name: 'TAB_HALO_TIMEOUT_SECONDS'
    value: tabHaloTimeoutSeconds
  }
  {
    name: 'TAB_DEADLINE_MS'
    value: tabDeadlineMs
  }
  {
    name: 'IMMY_SCOPE'
    value: immyScope
  }
  {
    name: 'IMMY_AUTHORITY_HOST'
    value: immyAuthorityHost
  }
  {
    name: 'IMMY_TAGS'
    value: immyTags
  }
  {
    name: 'IMMY_TAG_PREFIX'
    value: immyTagPrefix
  }
  {
    name: 'IMMY_HALO_LINK_ID'
    value: immyHaloLinkId
  }
  {
    name: 'IMMY_STALE_DAYS'
    value: immyStaleDays
  }
  {
    name: 'ASSET_SYNC'
    value: assetSync
  }
  {
    name: 'ASSET_TYPE_ID'
    value: assetTypeId
  }
  {
    name: 'ASSET_NAME_FIELD'
    value: assetNameField
  }
  {
    name: 'ASSET_ID_FIELD'
    value: assetIdField
  }
  {
    name: 'ASSET_MARKER_FIELD'
    value: assetMarkerField
  }
  {
    name: 'ASSET_SERIAL_FIELD'
    value: assetSerialField
  }
  {
    name: 'ASSET_UPDATE_MATCHED'
    value: assetUpdateMatched
  }
  {
    name: 'ASSET_MAX_CREATES'
    value: assetMaxCreates
  }
  {
    name: 'ASSET_WRITE_BATCH'
    value: assetWriteBatch
  }
], setting => !empty(setting.value))

// Fixed by the infra. The storage account is this deployment's own, so there is no other app's
// tables to keep apart from, and a prefix set later would hide the existing rules and mappings.
var fixedSettings = [
  {
    name: 'TABLES_PREFIX'
    value: ''
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

// HaloPSA's outbound webhook (docs/halopsa-webhooks.md): its own credential, from Key Vault.
var webhookSettings = webhookSecretStored ? [
  {
    name: 'HALO_WEBHOOK_SECRET'
    value: '@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/halo-webhook-secret/)'
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
      appSettings: concat(platformSettings, appSettings, adminSettings, fixedSettings, immySettings, immySecretSettings, webhookSettings)
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
