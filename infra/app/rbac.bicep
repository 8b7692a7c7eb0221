// Role assignments of the app's user-assigned identity: the least the app needs, each on the one
// resource it is needed for.

@description('Principal (object) ID of the app\'s user-assigned managed identity.')
param principalId string

@description('Storage account the Functions host and the app\'s tables live in.')
param storageAccountName string

@description('Key Vault holding the client secrets.')
param keyVaultName string

@description('Application Insights resource the app sends telemetry to.')
param applicationInsightsName string

// Built-in role definition IDs.
var storageRoles = [
  {
    // Host storage (leases, timer schedule state) and the Flex Consumption deployment package.
    name: 'Storage Blob Data Owner'
    id: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  }
  {
    // The sync-requests queue: POST /api/sync writes it, the queue trigger reads it.
    name: 'Storage Queue Data Contributor'
    id: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  }
  {
    // The app's tables: snapshots, sync state and runs, rules (TABLES_ENDPOINT).
    name: 'Storage Table Data Contributor'
    id: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  }
]
var keyVaultSecretsUser = '4633458b-17de-408a-b874-0445c86b69e6'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource storageAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for role in storageRoles: {
  name: guid(storage.id, principalId, role.id)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.id)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'halo-immy: ${role.name}'
  }
}]

// Key Vault references (HALO_CLIENT_SECRET, IMMY_CLIENT_SECRET) resolve as this identity.
resource keyVaultAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUser)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'halo-immy: Key Vault Secrets User'
  }
}

// Application Insights has local authentication disabled: ingestion needs this role.
resource appInsightsAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'halo-immy: Monitoring Metrics Publisher'
  }
}
