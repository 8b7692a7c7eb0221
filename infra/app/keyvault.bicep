// Key Vault with the secrets the app uses (the two client secrets, the HaloPSA webhook's). RBAC authorization (no access policies);
// soft delete and purge protection, so a deleted secret or vault can be recovered for 90 days,
// and the vault name stays taken for that long after `azd down`.

@minLength(3)
@maxLength(24)
@description('Key Vault name: 3-24 letters, digits and hyphens, globally unique.')
param name string

@description('Region of the vault.')
param location string

@description('Tags applied to the vault.')
param tags object = {}

@secure()
@minLength(1)
@description('HaloPSA API application client secret, stored as halo-client-secret.')
param haloClientSecret string

@secure()
@description('ImmyBot API app registration client secret, stored as immy-client-secret; empty: no secret is created.')
param immyClientSecret string = ''

@secure()
@description('Credential HaloPSA\'s outbound webhook sends to POST /api/halo/events, stored as halo-webhook-secret; empty: no secret is created.')
param haloWebhookSecret string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    // Ignored with RBAC authorization; given so the vault never falls back to access policies.
    accessPolicies: []
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource haloSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'halo-client-secret'
  properties: {
    value: haloClientSecret
    contentType: 'HaloPSA API application client secret'
  }
}

resource immySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(immyClientSecret)) {
  parent: vault
  name: 'immy-client-secret'
  properties: {
    value: immyClientSecret
    contentType: 'ImmyBot API Entra app registration client secret'
  }
}

resource webhookSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(haloWebhookSecret)) {
  parent: vault
  name: 'halo-webhook-secret'
  properties: {
    value: haloWebhookSecret
    contentType: 'HaloPSA outbound webhook credential (Basic password or Bearer token)'
  }
}

output name string = vault.name
output id string = vault.id
// Ends with a slash: https://<name>.vault.azure.net/
output uri string = vault.properties.vaultUri
