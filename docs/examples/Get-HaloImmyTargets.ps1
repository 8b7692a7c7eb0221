<#
.SYNOPSIS
    The ImmyBot tenants that pay for a software, from halo-immy's targets API. Throws on any doubt.

.DESCRIPTION
    Calls GET <ApiBaseUrl>/api/targets?software=<Software> with the targets function key and
    returns the ImmyBot tenant ids (or names) of the HaloPSA clients entitled to the software.

    It never returns an empty or partial list because something went wrong: when the API cannot be
    reached, answers anything but 200, answers something that is not the expected JSON, reports a
    different number of targets than it lists, has no snapshot yet (503), does not know the
    software (404), or serves data older than -MaxDataAgeHours, it THROWS. In ImmyBot a throwing
    target script makes the deployment fail to resolve, so nothing is deployed or removed on the
    strength of a bad answer. An answer of zero targets also throws unless -AllowEmpty is given.

    Covered clients without an ImmyBot tenant ("unmapped") cannot be deployed to; they are named in
    a warning (or, with -FailOnUnmapped, make the script throw). Map them with the halo-immy
    mappings API or by naming the ImmyBot tenant like the HaloPSA client.

    Runs on Windows PowerShell 5.1 and PowerShell 7. In ImmyBot, save it as a Function script named
    Get-HaloImmyTargets and call it from a Filter Script (see docs/immybot-setup.md).

.PARAMETER Software
    The rule's software name, as in GET /api/rules (case and spacing do not matter).

.PARAMETER ApiBaseUrl
    The function app, e.g. https://func-halo-immy-abc123.azurewebsites.net. Default: the
    HALO_IMMY_URL environment variable.

.PARAMETER FunctionKey
    The key of the "targets" function (sent as x-functions-key). Default: the
    HALO_IMMY_TARGETS_KEY environment variable. Never written to output or errors.

.PARAMETER Output
    TenantId (default): ImmyBot tenant ids. TenantName: ImmyBot tenant names.

.PARAMETER TimeoutSec
    HTTP timeout in seconds (default 30).

.PARAMETER MaxDataAgeHours
    Throw when the snapshot is older than this (default 24; 0 turns the check off).

.PARAMETER AllowEmpty
    Return nothing, instead of throwing, when the rule legitimately has zero targets.

.PARAMETER FailOnUnmapped
    Throw when any covered client has no ImmyBot tenant, instead of warning.

.EXAMPLE
    $env:HALO_IMMY_URL = 'https://func-halo-immy-abc123.azurewebsites.net'
    $env:HALO_IMMY_TARGETS_KEY = '<targets function key>'
    ./Get-HaloImmyTargets.ps1 -Software 'SentinelOne' -Verbose
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory = $true)]
    [ValidateNotNullOrEmpty()]
    [string] $Software,

    [string] $ApiBaseUrl = $env:HALO_IMMY_URL,

    [string] $FunctionKey = $env:HALO_IMMY_TARGETS_KEY,

    [ValidateSet('TenantId', 'TenantName')]
    [string] $Output = 'TenantId',

    [ValidateRange(1, 300)]
    [int] $TimeoutSec = 30,

    [ValidateRange(0, 8760)]
    [int] $MaxDataAgeHours = 24,

    [switch] $AllowEmpty,

    [switch] $FailOnUnmapped
)

$ErrorActionPreference = 'Stop'

function Stop-Targets([string] $Why) {
    # One prefix for every refusal, so ImmyBot's log says at once where it came from.
    throw "halo-immy targets for '$Software': $Why. Nothing returned; the deployment is skipped."
}

function Get-JsonMember([object] $Object, [string] $Name) {
    # A JSON member, or Stop-Targets if it is absent (a null value is returned as $null).
    if ($null -eq $Object -or $Object -isnot [psobject]) {
        Stop-Targets "the answer is not a JSON object where '$Name' was expected"
    }
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) {
        Stop-Targets "the answer has no '$Name' member (is the API older or newer than this script?)"
    }
    return , $property.Value
}

function Get-IntegerValue([object] $Value, [string] $What) {
    if ($Value -is [int] -or $Value -is [long]) { return [long] $Value }
    Stop-Targets "$What is not an integer"
}

function Get-NormalisedName([string] $Name) {
    # As the API compares names: Unicode NFKC, case-insensitive, runs of whitespace as one space.
    return (($Name.Normalize([Text.NormalizationForm]::FormKC).Trim() -replace '\s+', ' ').ToLowerInvariant())
}

# -- the request -----------------------------------------------------------------------------------

if ([string]::IsNullOrWhiteSpace($ApiBaseUrl)) {
    Stop-Targets 'no API URL: pass -ApiBaseUrl or set HALO_IMMY_URL'
}
if ([string]::IsNullOrWhiteSpace($FunctionKey)) {
    Stop-Targets 'no function key: pass -FunctionKey or set HALO_IMMY_TARGETS_KEY'
}
$base = $null
if (-not [uri]::TryCreate($ApiBaseUrl.Trim().TrimEnd('/'), [UriKind]::Absolute, [ref] $base)) {
    Stop-Targets "the API URL '$ApiBaseUrl' is not an absolute URL"
}
$loopback = @('localhost', '127.0.0.1', '[::1]', '::1') -contains $base.Host
if ($base.Scheme -ne 'https' -and -not ($base.Scheme -eq 'http' -and $loopback)) {
    Stop-Targets "the API URL must be https:// (plain http only for loopback), got '$($base.Scheme)'"
}
$uri = '{0}/api/targets?software={1}' -f $base.AbsoluteUri.TrimEnd('/'), [uri]::EscapeDataString($Software)

if ($PSVersionTable.PSVersion.Major -lt 6) {
    # Windows PowerShell 5.1 may not offer TLS 1.2 by default; the function app requires it.
    [Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor [Net.SecurityProtocolType]::Tls12
}

$request = @{
    Uri                = $uri
    Method             = 'Get'
    Headers            = @{ 'x-functions-key' = $FunctionKey; 'Accept' = 'application/json' }
    TimeoutSec         = $TimeoutSec
    MaximumRedirection = 0
    ErrorAction        = 'Stop'
}
if ($PSVersionTable.PSVersion.Major -ge 7) {
    $request['StatusCodeVariable'] = 'statusCode'
}
$statusCode = $null

Write-Verbose "GET $($base.AbsoluteUri.TrimEnd('/'))/api/targets?software=$Software"
try {
    $body = Invoke-RestMethod @request
}
catch {
    $err = $_
    $status = $null
    $response = $err.Exception.Response
    if ($null -ne $response -and $null -ne $response.StatusCode) {
        $status = [int] $response.StatusCode
    }
    $detail = $null
    if ($null -ne $err.ErrorDetails -and -not [string]::IsNullOrWhiteSpace($err.ErrorDetails.Message)) {
        try {
            $problem = $err.ErrorDetails.Message | ConvertFrom-Json
            $detail = (@($problem.title, $problem.detail) | Where-Object { $_ }) -join ': '
            if ($null -ne $problem.PSObject.Properties['closest'] -and @($problem.closest).Count -gt 0) {
                $detail += " (closest: $(@($problem.closest) -join ', '))"
            }
        }
        catch {
            $detail = $null
        }
    }
    $retryAfter = $null
    if ($null -ne $response -and $null -ne $response.Headers) {
        try { $retryAfter = @($response.Headers.GetValues('Retry-After'))[0] } catch { $retryAfter = $null }
    }
    if ($null -eq $status) {
        Stop-Targets "the API could not be reached ($($err.Exception.GetType().Name): $($err.Exception.Message))"
    }
    $why = "the API answered HTTP $status"
    if ($detail) { $why += " ($detail)" }
    if ($status -eq 401) { $why += '; check the targets function key' }
    if ($status -eq 503 -and $retryAfter) { $why += "; retry after $retryAfter s" }
    Stop-Targets $why
}

if ($PSVersionTable.PSVersion.Major -ge 7 -and $statusCode -ne 200) {
    Stop-Targets "the API answered HTTP $statusCode, not 200"
}
if ($null -eq $body -or $body -is [string] -or $body -isnot [psobject]) {
    Stop-Targets 'the answer is not a JSON object (malformed JSON, an HTML page, or empty)'
}

# -- the answer ------------------------------------------------------------------------------------

$answeredSoftware = Get-JsonMember $body 'software'
if ($answeredSoftware -isnot [string] -or (Get-NormalisedName $answeredSoftware) -ne (Get-NormalisedName $Software)) {
    Stop-Targets "the answer is for software '$answeredSoftware'"
}
$generation = Get-JsonMember $body 'generation'
if ($generation -isnot [string] -or [string]::IsNullOrWhiteSpace($generation)) {
    Stop-Targets 'the answer has no generation'
}
$syncedAtText = Get-JsonMember $body 'synced_at'
$syncedAt = [datetimeoffset]::MinValue
if ($syncedAtText -is [datetime]) {
    # PowerShell 7 turns ISO 8601 strings into DateTime while parsing JSON.
    $syncedAt = [datetimeoffset] $syncedAtText.ToUniversalTime()
}
elseif ($syncedAtText -isnot [string] -or -not [datetimeoffset]::TryParse($syncedAtText, [cultureinfo]::InvariantCulture, [Globalization.DateTimeStyles]::AssumeUniversal, [ref] $syncedAt)) {
    Stop-Targets "synced_at '$syncedAtText' is not a date"
}
$ageHours = ([datetimeoffset]::UtcNow - $syncedAt).TotalHours
if ($MaxDataAgeHours -gt 0 -and $ageHours -gt $MaxDataAgeHours) {
    Stop-Targets ('the data is {0:N1} hours old (more than {1}); check GET /api/sync/status' -f $ageHours, $MaxDataAgeHours)
}
$configured = Get-JsonMember $body 'immybot_configured'
if ($configured -isnot [bool] -or -not $configured) {
    Stop-Targets 'ImmyBot is not configured in halo-immy, so targets carry no ImmyBot tenant'
}

$counts = Get-JsonMember $body 'counts'
$expected = Get-IntegerValue (Get-JsonMember $counts 'targets') 'counts.targets'
$targets = Get-JsonMember $body 'targets'
if ($targets -isnot [array]) {
    Stop-Targets "'targets' is not a list"
}
$unmapped = Get-JsonMember $body 'unmapped'
if ($unmapped -isnot [array]) {
    Stop-Targets "'unmapped' is not a list"
}
if ($targets.Count -ne $expected) {
    Stop-Targets "counts.targets says $expected but $($targets.Count) targets are listed"
}

$unmappedIds = @{}
foreach ($gap in $unmapped) {
    $unmappedIds[[string] (Get-IntegerValue (Get-JsonMember $gap 'client_id') 'unmapped[].client_id')] = $true
}

$ids = [System.Collections.Generic.SortedSet[long]]::new()
$names = [System.Collections.Generic.SortedSet[string]]::new([StringComparer]::OrdinalIgnoreCase)
$withoutTenant = [System.Collections.Generic.List[string]]::new()
foreach ($target in $targets) {
    $clientId = Get-IntegerValue (Get-JsonMember $target 'client_id') 'targets[].client_id'
    $clientName = Get-JsonMember $target 'client_name'
    if ($clientName -isnot [string]) { Stop-Targets "target $clientId has no client_name" }
    # quantity is null when nothing billed is known yet (a contract, or lines whose quantity HaloPSA
    # calculates at invoice time): that is "calculated", never 0, so it must not stop the script.
    $quantity = Get-JsonMember $target 'quantity'
    if ($null -ne $quantity -and $quantity -isnot [ValueType]) {
        Stop-Targets "target $clientId has a quantity that is not a number"
    }
    $quantities = Get-JsonMember $target 'quantities'
    $null = Get-JsonMember $quantities 'calculated_unknown'
    $reasons = Get-JsonMember $target 'reasons'
    if ($reasons -isnot [array] -or $reasons.Count -eq 0) { Stop-Targets "target $clientId has no reasons" }
    $tenantId = Get-JsonMember $target 'immy_tenant_id'
    if ($null -eq $tenantId) {
        if (-not $unmappedIds.ContainsKey([string] $clientId)) {
            Stop-Targets "target $clientId has no ImmyBot tenant but is not listed as unmapped"
        }
        $withoutTenant.Add("$clientName ($clientId)")
        continue
    }
    [void] $ids.Add((Get-IntegerValue $tenantId "targets[$clientId].immy_tenant_id"))
    if ($Output -eq 'TenantName') {
        $tenantName = Get-JsonMember $target 'immy_tenant_name'
        if ($tenantName -isnot [string] -or [string]::IsNullOrWhiteSpace($tenantName)) {
            Stop-Targets "target $clientId has a tenant id but no immy_tenant_name"
        }
        [void] $names.Add($tenantName)
    }
}

if ($withoutTenant.Count -gt 0) {
    $message = "halo-immy targets for '$Software': $($withoutTenant.Count) covered client(s) have no ImmyBot tenant and get nothing: $($withoutTenant -join '; ')"
    if ($FailOnUnmapped) { Stop-Targets ($message -replace "^halo-immy targets for '[^']*': ", '') }
    Write-Warning $message
}
if ($expected -eq 0) {
    if (-not $AllowEmpty) {
        Stop-Targets 'the rule has zero targets (pass -AllowEmpty if that is expected)'
    }
    Write-Verbose "generation ${generation}: zero targets"
    return
}
if ($ids.Count -eq 0) {
    Stop-Targets "all $expected targets are unmapped: no ImmyBot tenant to deploy to"
}

Write-Verbose ("generation {0}, synced {1:u} ({2:N1} h ago): {3} target(s), {4} ImmyBot tenant(s)" -f $generation, $syncedAt.UtcDateTime, $ageHours, $expected, $ids.Count)
# One item per tenant on the pipeline; wrap the call in @() to always get an array.
if ($Output -eq 'TenantName') {
    return [string[]] @($names)
}
return [long[]] @($ids)
