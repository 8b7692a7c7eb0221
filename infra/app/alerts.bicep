// Log alerts on the sync's one-line JSON log ("event": "sync_run", one line per run) in
// Application Insights traces. docs/operations.md says what each one means and what to do.

@description('Region of the alert rules.')
param location string

@description('Tags applied to the rules and the action group.')
param tags object = {}

@description('Application Insights resource the app logs to.')
param applicationInsightsName string

@description('E-mail address to notify; empty: no action group, the rules only show in Azure Monitor.')
param alertEmail string = ''

@description('Window without a successful sync after which the data is called stale: a log alert window such as PT30M, PT1H, PT2H, PT6H.')
param staleAfter string = 'PT1H'

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = if (!empty(alertEmail)) {
  name: 'ag-halo-immy'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'halo-immy'
    enabled: true
    emailReceivers: [
      {
        name: 'operator'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var actionGroups = empty(alertEmail) ? [] : [
  actionGroup.id
]

// Every sync run logs one JSON line: {"event": "sync_run", "outcome": ..., "run_id": ...}.
var runs = 'traces | where message contains "sync_run" | extend run = parse_json(message) | where tostring(run.event) == "sync_run" | extend outcome = tostring(run.outcome), run_id = tostring(run.run_id), error = tostring(run.error)'

// The latest run that did something (skipped runs lost the lease to another run and are ignored).
var latestRun = '${runs} | where outcome in ("succeeded", "failed", "held", "abandoned") | summarize arg_max(timestamp, outcome, run_id, error)'

resource syncFailed 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'halo-immy-sync-failed'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'halo-immy: the latest sync failed'
    description: 'The most recent sync run ended "failed" (HaloPSA, ImmyBot or storage error) or "abandoned" (killed before it finished). The previous snapshot keeps serving. See docs/operations.md.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    scopes: [
      appInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: '${latestRun} | where outcome in ("failed", "abandoned")'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource syncHeld 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'halo-immy-sync-held'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'halo-immy: a sync is held by the mass-change guard'
    description: 'The most recent sync run was held: it would remove more than SYNC_MAX_DROP of a rule\'s targets (or of its targets with an ImmyBot tenant, or of mapped tenants), or all of them, or HaloPSA records were rejected or a record type came back empty. Review GET /api/sync/status, then approve or fix HaloPSA. See docs/operations.md.'
    severity: 2
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    scopes: [
      appInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: '${latestRun} | where outcome == "held"'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}

resource dataStale 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'halo-immy-data-stale'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'halo-immy: no successful sync lately'
    description: 'No sync run succeeded within the window: targets and the technician tab serve old data. See docs/operations.md.'
    severity: 1
    enabled: true
    evaluationFrequency: 'PT15M'
    windowSize: staleAfter
    scopes: [
      appInsights.id
    ]
    criteria: {
      allOf: [
        {
          query: '${runs} | where outcome == "succeeded"'
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroups
    }
  }
}
