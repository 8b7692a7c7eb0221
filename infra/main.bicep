// halo-immy on Azure Functions Flex Consumption, for `azd up`.
//
// One resource group holding: a user-assigned managed identity (the app's only identity), a
// storage account reached by that identity only (host storage, deployment package, the app's
// tables), a Key Vault with the HaloPSA and ImmyBot client secrets, Application Insights with
// Entra-only ingestion, log alerts on the sync, and the function app itself.
targetScope = 'subscription'

// -- azd ------------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; it seeds the resource names and tags every resource.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption: az functionapp list-flexconsumption-locations.')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Resource group to create or reuse; empty: rg-<environmentName>.')
param resourceGroupName string = ''

// -- HaloPSA --------------------------------------------------------------------------------------

@minLength(9)
@description('HaloPSA base URL, e.g. https://yourmsp.halopsa.com (no path, no query).')
param haloBaseUrl string

@description('HaloPSA tenant name; hosted (*.halopsa.com) instances need it on the token request. Empty for self-hosted.')
param haloTenant string = ''

@minLength(1)
@description('Client ID of the HaloPSA API application (Client ID and Secret (Services), login type Agent).')
param haloClientId string

@secure()
@minLength(1)
@description('Client secret of the HaloPSA API application. Stored in Key Vault as halo-client-secret.')
param haloClientSecret string

@description('HALO_SCOPE: OAuth scopes asked of HaloPSA, space-separated (docs/halopsa-setup.md). Set it when the API application is granted individual permissions instead of "all".')
param haloScope string = 'all'

@secure()
@description('HALO_WEBHOOK_SECRET: the credential HaloPSA\'s outbound webhook sends (Basic password or Bearer token), at least 24 characters. Stored in Key Vault as halo-webhook-secret. Empty: no webhook (POST /api/halo/events answers 404); the timer sync alone keeps the data.')
param haloWebhookSecret string = ''

@description('Origins allowed to frame the technician tab, space-separated. Empty: the origin of haloBaseUrl.')
param frameOrigins string = ''

// -- ImmyBot (optional: all four or none) -----------------------------------------------------------

@description('ImmyBot instance URL, e.g. https://yourmsp.immy.bot. Empty: ImmyBot is not configured.')
param immyBaseUrl string = ''

@description('Directory (tenant) ID of the MSP Entra tenant holding the ImmyBot API app registration.')
param immyTenantId string = ''

@description('Application (client) ID of the Entra app registration used for the ImmyBot API.')
param immyClientId string = ''

@secure()
@description('Client secret of that app registration. Stored in Key Vault as immy-client-secret when given.')
param immyClientSecret string = ''

// -- settings an admin may change -----------------------------------------------------------------
// Each is mapped in main.parameters.json from the azd variable named like the app setting
// (`azd env set IMMY_TAGS apply`, then `azd provision`). The defaults are the app's own
// (shared/settings.py); unset or empty, api.bicep leaves the setting out and the app uses that
// default.

@allowed([
  ''
  'auto'
  'report'
  'rest'
])
@description('HALO_READ_MODE: how a sync reads HaloPSA: auto (SQL reports when HaloPSA runs them for the API application, else REST), report or rest.')
param haloReadMode string = 'auto'

@description('HALO_REQUESTS_PER_MINUTE: the app\'s HaloPSA request budget (hosted HaloPSA allows 300 per rolling 5 minutes).')
param haloRequestsPerMinute string = '50'

@description('HALO_PAGE_SIZE: records per HaloPSA page, 10 to 1000.')
param haloPageSize string = '100'

@description('HALO_TIMEOUT_SECONDS: per-request HaloPSA timeout.')
param haloTimeoutSeconds string = '30'

@description('HALO_BACKOFF_429_SECONDS: the least pause after a HaloPSA 429.')
param haloBackoff429Seconds string = '30'

@description('SYNC_MAX_DROP: share of a rule\'s targets a sync may remove before it is held.')
param syncMaxDrop string = '0.3'

@allowed([
  ''
  'true'
  'false'
])
@description('SYNC_CONFIRM_BY_REPEAT: a held outcome becomes current when the next sync agrees with it.')
param syncConfirmByRepeat string = 'false'

@description('SYNC_TIME_LIMIT_SECONDS: how long a run reads HaloPSA before it stops as resumable (keep it under host.json\'s 30-minute functionTimeout).')
param syncTimeLimitSeconds string = '1200'

@description('CHANGES_KEEP_DAYS: how many days the change log (GET /api/changes) keeps a change.')
param changesKeepDays string = '90'

@description('TAB_ALLOWED_GROUP: Entra group object id whose members may see the technician tab (needs App Service Authentication). Empty: no group check.')
param tabAllowedGroup string = ''

@description('TAB_HALO_TIMEOUT_SECONDS: HaloPSA timeout of the tab\'s ticket read.')
param tabHaloTimeoutSeconds string = '2'

@description('TAB_DEADLINE_MS: one deadline for everything the tab reads live.')
param tabDeadlineMs string = '800'

@description('IMMY_SCOPE: token scope asked of Entra ID. Empty: <IMMY_BASE_URL>/.default.')
param immyScope string = ''

@description('IMMY_AUTHORITY_HOST: the Entra ID host tokens come from.')
param immyAuthorityHost string = 'https://login.microsoftonline.com'

@allowed([
  ''
  'off'
  'plan'
  'apply'
])
@description('IMMY_TAGS: a tag per rule in ImmyBot: off, plan (record the changes only) or apply.')
param immyTags string = 'plan'

@description('IMMY_TAG_PREFIX: tag name = prefix + software (a trailing space is kept).')
param immyTagPrefix string = 'Halo: '

@description('IMMY_HALO_LINK_ID: id of ImmyBot\'s HaloPSA provider link. Empty: the one enabled link whose name contains Halo, if exactly one.')
param immyHaloLinkId string = ''

@description('IMMY_STALE_DAYS: a computer not seen for this many days counts as stale.')
param immyStaleDays string = '30'

@allowed([
  ''
  'off'
  'plan'
  'apply'
])
@description('ASSET_SYNC: HaloPSA asset population: off, plan or apply (docs/halopsa-setup.md step 5).')
param assetSync string = 'off'

@description('ASSET_TYPE_ID: HaloPSA asset type of the assets created. Needed unless ASSET_SYNC is off.')
param assetTypeId string = ''

@description('ASSET_NAME_FIELD: field id of the asset type\'s key field 1. Needed unless ASSET_SYNC is off.')
param assetNameField string = ''

@description('ASSET_ID_FIELD: field id that holds the ImmyBot computer id. Needed unless ASSET_SYNC is off.')
param assetIdField string = ''

@description('ASSET_MARKER_FIELD: field id of the created-by-halo-immy marker. Needed unless ASSET_SYNC is off.')
param assetMarkerField string = ''

@description('ASSET_SERIAL_FIELD: field id of the serial number. Empty: no serial matching.')
param assetSerialField string = ''

@allowed([
  ''
  'true'
  'false'
])
@description('ASSET_UPDATE_MATCHED: also refresh name, serial and user on human-made assets the app matched.')
param assetUpdateMatched string = 'false'

@description('ASSET_MAX_CREATES: a run that would create more assets is held for approval.')
param assetMaxCreates string = '200'

@description('ASSET_WRITE_BATCH: assets per POST /api/Asset, 1 to 100.')
param assetWriteBatch string = '25'

// -- behaviour ------------------------------------------------------------------------------------

@description('Six-field NCRONTAB schedule of the HaloPSA sync, UTC. Empty: every 15 minutes.')
param syncSchedule string = '0 */15 * * * *'

@minValue(40)
@maxValue(1000)
@description('Flex Consumption scale-out limit.')
param maximumInstanceCount int = 40

@allowed([
  2048
  4096
])
@description('Memory of each Flex Consumption instance, MB.')
param instanceMemoryMB int = 2048

@description('E-mail address alerted when a sync fails, is held, or the data goes stale. Empty: the alert rules exist but notify nobody.')
param alertEmail string = ''

@description('How long without a successful sync before the stale-data alert fires: a log alert window such as PT30M, PT1H, PT2H, PT6H (at least two sync intervals). Empty: PT1H.')
param staleAfter string = 'PT1H'

// -- names ----------------------------------------------------------------------------------------

var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
  application: 'halo-immy'
}
var functionAppName = 'func-halo-immy-${resourceToken}'
// Flex Consumption deploys from this blob container; the name stays within 63 characters.
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var haloUrlParts = split(haloBaseUrl, '/')
var haloOrigin = '${haloUrlParts[0]}//${haloUrlParts[2]}'
var effectiveFrameOrigins = empty(frameOrigins) ? haloOrigin : frameOrigins
var effectiveSyncSchedule = empty(syncSchedule) ? '0 */15 * * * *' : syncSchedule
var effectiveStaleAfter = empty(staleAfter) ? 'PT1H' : staleAfter
var immyConfigured = !empty(immyBaseUrl)

resource rg 'Microsoft.Resources/resourceGroups@2022-09-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: 'id-halo-immy-${resourceToken}'
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: 'log-${resourceToken}'
    applicationInsightsName: 'appi-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: 'st${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: 'kv-${resourceToken}'
    location: location
    tags: tags
    haloClientSecret: haloClientSecret
    immyClientSecret: immyClientSecret
    haloWebhookSecret: haloWebhookSecret
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module api 'app/api.bicep' = {
  name: 'api'
  scope: rg
  params: {
    name: functionAppName
    planName: 'plan-${resourceToken}'
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    keyVaultUri: keyVault.outputs.uri
    immySecretStored: !empty(immyClientSecret)
    webhookSecretStored: !empty(haloWebhookSecret)
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    haloBaseUrl: haloBaseUrl
    haloTenant: haloTenant
    haloClientId: haloClientId
    haloScope: haloScope
    frameOrigins: effectiveFrameOrigins
    syncSchedule: effectiveSyncSchedule
    immyConfigured: immyConfigured
    immyBaseUrl: immyBaseUrl
    immyTenantId: immyTenantId
    immyClientId: immyClientId
    haloReadMode: haloReadMode
    haloRequestsPerMinute: haloRequestsPerMinute
    haloPageSize: haloPageSize
    haloTimeoutSeconds: haloTimeoutSeconds
    haloBackoff429Seconds: haloBackoff429Seconds
    syncMaxDrop: syncMaxDrop
    syncConfirmByRepeat: syncConfirmByRepeat
    syncTimeLimitSeconds: syncTimeLimitSeconds
    changesKeepDays: changesKeepDays
    tabAllowedGroup: tabAllowedGroup
    tabHaloTimeoutSeconds: tabHaloTimeoutSeconds
    tabDeadlineMs: tabDeadlineMs
    immyScope: immyScope
    immyAuthorityHost: immyAuthorityHost
    immyTags: immyTags
    immyTagPrefix: immyTagPrefix
    immyHaloLinkId: immyHaloLinkId
    immyStaleDays: immyStaleDays
    assetSync: assetSync
    assetTypeId: assetTypeId
    assetNameField: assetNameField
    assetIdField: assetIdField
    assetMarkerField: assetMarkerField
    assetSerialField: assetSerialField
    assetUpdateMatched: assetUpdateMatched
    assetMaxCreates: assetMaxCreates
    assetWriteBatch: assetWriteBatch
  }
  // The host reaches storage, Key Vault and Application Insights by identity from its first start.
  dependsOn: [
    rbac
  ]
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    location: location
    tags: tags
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    alertEmail: alertEmail
    staleAfter: effectiveStaleAfter
  }
}

// -- outputs (azd writes them to .azure/<env>/.env) -----------------------------------------------

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output SERVICE_API_NAME string = api.outputs.name
output SERVICE_API_URI string = api.outputs.uri
output AZURE_FUNCTION_APP_NAME string = api.outputs.name
output AZURE_FUNCTION_URI string = api.outputs.uri
output AZURE_USER_ASSIGNED_IDENTITY_NAME string = identity.outputs.name
output AZURE_USER_ASSIGNED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_TABLES_ENDPOINT string = storage.outputs.tableEndpoint
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_KEY_VAULT_ENDPOINT string = keyVault.outputs.uri
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_LOG_ANALYTICS_WORKSPACE_NAME string = monitoring.outputs.logAnalyticsName
