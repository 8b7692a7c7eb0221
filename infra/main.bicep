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

@description('OAuth scopes asked of HaloPSA, space-separated. Empty: the app asks for "all". Set it when the API application is granted individual permissions instead of "all".')
param haloScope string = ''

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

@description('How long without a successful sync before the stale-data alert fires: a log alert window such as PT30M, PT1H, PT2H, PT6H (at least two sync intervals).')
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
    staleAfter: staleAfter
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
