"""The setup check's HaloPSA part: the token, each API permission the app uses, what the agent sees.

Each permission is proven by the smallest request that needs it (one record of one page), through
the app's own HaloClient and settings. Nothing here writes to HaloPSA: `edit:assets` is reported
as unproven rather than tried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.api.setup_models import CheckResult, CheckStatus, failed, missing, ok, skipped
from shared.core.record_comparison import Proof
from shared.halo.client import HaloClient
from shared.halo.errors import (
    HaloAuthError,
    HaloError,
    HaloNotFound,
    HaloRateLimited,
    HaloReportError,
    HaloUnavailable,
)
from shared.halo.proof import prove
from shared.halo.report import ReportListings, read_via_report
from shared.halo.report_sql import PROBE_SQL
from shared.outbound.budget import RetryPolicy
from shared.settings import Settings

APPLICATIONS = "Configuration > Integrations > HaloPSA API > View Applications"
APPLICATION = f"{APPLICATIONS} > the app > Permissions"
AGENT = "Configuration > Teams & Agents > Agents > the API agent"
CHECK_TIMEOUT_SECONDS = 15.0
RETRY = "run the check again; if it persists, check HALO_BASE_URL and HaloPSA's status"


@dataclass(frozen=True, slots=True)
class Permission:
    """One HaloPSA API permission, the resource that proves it, and the agent's matching right."""

    scope: str
    resource: str
    agent: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        """The check's name."""
        return f"halo.{self.scope}"


READS = (
    Permission(
        "read:customers",
        "Client",
        "Clients Access Level: Read Only",
        (("includeinactive", "true"),),
    ),
    Permission("read:contracts", "ClientContract", "Client Contracts Access Level: Read Only"),
    Permission("read:items", "Item", "Items Access Level: Read Only"),
    Permission("read:invoices", "RecurringInvoice", "Invoices Access Level: Read Only"),
    Permission("read:tickets", "Tickets", "Tickets Access Level: Read Only"),
)
READ_ASSETS = Permission("read:assets", "Asset", "Assets Access Level: Read Only")
EDIT_ASSETS = "edit:assets"
REPORTING = "edit:reporting"
TOKEN = "halo.token"  # noqa: S105 - a check name
VISIBLE = "halo.clients_visible"
REPORT_SAMPLE = "halo.report_sample"


def client_for_check(settings: Settings) -> HaloClient:
    """A HaloClient from settings that gives up sooner than a sync's: an admin is waiting."""
    return HaloClient.from_settings(
        settings,
        timeout=min(settings.halo_timeout_seconds, CHECK_TIMEOUT_SECONDS),
        retry=RetryPolicy(max_attempts=2, max_throttled=1, backoff_429=5.0, max_retry_after=10.0),
    )


async def halo_checks(settings: Settings) -> list[CheckResult]:
    """Every HaloPSA check, in a fixed order; the rest are skipped when the token is refused."""
    async with client_for_check(settings) as halo:
        token = await check_token(halo, settings)
        if not token.passed:
            return [token, *_skip_all(settings, "needs a HaloPSA token (see halo.token)")]
        reads = await asyncio.gather(*(check_read(halo, settings, p) for p in READS))
        customers, clients = reads[0]
        visible = _visibility(customers, clients)
        report = await check_report(halo, settings)
        # The sample reads clients, contracts, items and invoices through REST as well.
        sampled = [r for r, _ in reads if r.name != "halo.read:tickets"]
        sample = (
            await check_report_sample(halo, settings)
            if report.status is CheckStatus.OK and all(r.status is CheckStatus.OK for r in sampled)
            else skipped(REPORT_SAMPLE, _why_no_sample(settings))
        )
        assets = await check_assets(halo, settings)
    return [token, *(r for r, _ in reads), visible, report, sample, *assets]


def _why_no_sample(settings: Settings) -> str:
    """Why the report sample did not run."""
    if settings.halo_read_mode == "rest":
        return "HALO_READ_MODE=rest: syncs read through REST and run no report"
    return "needs report access and the read permissions above"


def _skip_all(settings: Settings, why: str) -> list[CheckResult]:
    """A skipped line for every HaloPSA check after the token."""
    names = [p.name for p in READS] + [VISIBLE, f"halo.{REPORTING}", REPORT_SAMPLE]
    if settings.asset_sync != "off":
        names += [READ_ASSETS.name, f"halo.{EDIT_ASSETS}"]
    return [skipped(name, why) for name in names]


async def check_token(halo: HaloClient, settings: Settings) -> CheckResult:
    """The token request: a refusal names the credentials, the tenant, the scope or the URL."""
    tenant = f"tenant {settings.halo_tenant}" if settings.halo_tenant else "no tenant"
    try:
        await halo.authenticate()
    except HaloError as error:
        return _token_failure(error, settings)
    return ok(TOKEN, f"token issued ({tenant}, scope '{settings.halo_scope}')")


def _token_failure(error: HaloError, settings: Settings) -> CheckResult:
    """The token line for a refusal: which setting HaloPSA's answer points at."""
    detail = str(error)
    if isinstance(error, HaloRateLimited):
        return failed(TOKEN, detail, "HaloPSA is rate limiting: run the check again in 5 minutes")
    if isinstance(error, HaloUnavailable) or error.status is None:
        fix = "check HALO_BASE_URL (the instance URL, e.g. https://yourmsp.halopsa.com) and that "
        return failed(TOKEN, detail, fix + "HaloPSA is up and reachable from the app")
    if isinstance(error, HaloNotFound):
        return failed(TOKEN, detail, "HALO_BASE_URL must be the instance's base URL, with no path")
    if not isinstance(error, HaloAuthError):
        return failed(TOKEN, detail, "HALO_BASE_URL does not look like a HaloPSA instance")
    code = error.code or ""
    if code == "invalid_client" or error.status == 401:
        fix = (
            "HALO_CLIENT_ID and HALO_CLIENT_SECRET must be the API application's Client ID and "
            f"Secret ({APPLICATIONS}; a new secret can be generated there)"
        )
        return failed(TOKEN, f"credentials refused: {detail}", fix)
    if code == "invalid_scope":
        return failed(
            TOKEN,
            f"scope refused: {detail}",
            f"HALO_SCOPE ('{settings.halo_scope}') must name only permissions ticked on the API "
            "application, or be 'all'",
        )
    if code in ("unauthorized_client", "unsupported_grant_type"):
        return failed(
            TOKEN,
            detail,
            "the API application's Authentication Method must be Client ID and Secret (Services)",
        )
    given = f"is '{settings.halo_tenant}'" if settings.halo_tenant else "is not set"
    return failed(
        TOKEN,
        f"tenant refused: {detail}",
        f"HALO_TENANT {given}: on a hosted (*.halopsa.com) instance it must be the Tenant shown "
        "under Configuration > Integrations > HaloPSA API (API Details); empty on self-hosted",
    )


async def check_read(
    halo: HaloClient, settings: Settings, permission: Permission
) -> tuple[CheckResult, int | None]:
    """One page of one record of the permission's resource, and the record count it reports."""
    path = f"/api/{permission.resource}"
    params = {**dict(permission.params), "pageinate": "true", "page_size": "1", "page_no": "1"}
    try:
        body = await halo.get_json(path, params, resource=permission.resource)
    except HaloAuthError as error:
        return _missing_permission(permission, settings, str(error)), None
    except HaloError as error:
        return failed(permission.name, str(error), RETRY), None
    count = _record_count(body)
    shown = "an answer" if count is None else f"{count} record(s)"
    return ok(permission.name, f"GET {path}: {shown}"), count


def _record_count(body: Any) -> int | None:
    """The `record_count` of a list answer, if it has a usable one."""
    count = body.get("record_count") if isinstance(body, Mapping) else None
    return int(count) if isinstance(count, int | float) and count >= 0 else None


def scope_hint(scope: str, settings: Settings) -> str:
    """What HALO_SCOPE says about `scope`: the token asks only for the words it lists."""
    words = settings.halo_scope.split()
    if "all" in words:
        return "HALO_SCOPE is 'all', which asks for it"
    if scope in words:
        return f"HALO_SCOPE lists {scope}"
    return f"and add {scope} to HALO_SCOPE (now '{settings.halo_scope}')"


def _missing_permission(permission: Permission, settings: Settings, detail: str) -> CheckResult:
    """The line for a refused read: the permission, the agent's right, and HALO_SCOPE."""
    fix = (
        f"tick {permission.scope} on the API application ({APPLICATION}), give the agent it logs "
        f"in as '{permission.agent}' ({AGENT}); {scope_hint(permission.scope, settings)}"
    )
    return missing(permission.name, detail, fix)


def _visibility(customers: CheckResult, clients: int | None) -> CheckResult:
    """Whether the agent sees any client (an agent in no team sees none, without an error)."""
    if customers.status is not CheckStatus.OK:
        return skipped(VISIBLE, "needs read:customers (see halo.read:customers)")
    if clients is None:
        return failed(VISIBLE, "the client list carried no record_count", "retry the check")
    if clients == 0:
        return missing(
            VISIBLE,
            "the agent sees no clients: it is in no team, or restricted to no customers",
            f"{AGENT}: put it in the team(s) that see all tickets and do not restrict it to some "
            "customers or sites (docs/halopsa-setup.md, step 1)",
        )
    return ok(VISIBLE, f"the agent sees {clients} client(s), inactive ones included")


async def check_report(halo: HaloClient, settings: Settings) -> CheckResult:
    """`POST /api/Report` with a SELECT that returns nothing, as the sync's read mode needs it."""
    name = f"halo.{REPORTING}"
    mode = settings.halo_read_mode
    if mode == "rest":
        return skipped(name, "HALO_READ_MODE=rest: syncs read through REST and run no report")
    required = mode == "report"
    fallback = "" if required else "; until then syncs read through REST (slower, same data)"
    try:
        await halo.report(PROBE_SQL)
    except HaloAuthError as error:
        fix = (
            f"tick read:reporting and edit:reporting on the API application ({APPLICATION}); "
            f"{scope_hint(REPORTING, settings)}{fallback}"
        )
        return missing(name, str(error), fix, required=required)
    except (HaloReportError, HaloNotFound) as error:
        fix = "HaloPSA would not run the probe SQL: set HALO_READ_MODE=rest" + fallback
        return failed(name, str(error), fix, required=required)
    except HaloError as error:
        return failed(name, str(error), RETRY, required=required)
    return ok(
        name, f"POST /api/Report ran '{PROBE_SQL}' (HALO_READ_MODE={mode})", required=required
    )


# The whole check answers within 90 s (shared.api.setup): the sample may take at most this, so
# a large instance's slow report read costs its own line, not every HaloPSA line.
SAMPLE_SECONDS = 45


async def _sampled(halo: HaloClient) -> tuple[ReportListings, Proof]:
    found = await read_via_report(halo)
    return await prove(halo, found, today=datetime.now(UTC).date())


async def check_report_sample(halo: HaloClient, settings: Settings) -> CheckResult:
    """A whole report read compared with a REST sample of the same instance, as every report
    sync does (shared.halo.proof): ok when they agree on every field that decides coverage."""
    required = settings.halo_read_mode == "report"
    try:
        _, proof = await asyncio.wait_for(_sampled(halo), SAMPLE_SECONDS)
    except TimeoutError:
        detail = f"a report read and its REST sample took longer than {SAMPLE_SECONDS} s"
        fix = "a sync has longer; run the check again, or see the next sync's read_proof"
        return failed(REPORT_SAMPLE, detail, fix, required=required)
    except HaloError as error:
        fix = "HaloPSA could not answer the report read: " + (
            RETRY if required else "until it can, syncs read through REST (slower, same data)"
        )
        return failed(REPORT_SAMPLE, str(error), fix, required=required)
    compared = ", ".join(f"{n} {kind}" for kind, n in proof.compared.items())
    if not proof.findings:
        detail = f"a report read agrees with a REST sample ({compared}; {proof.requests} requests)"
        return ok(REPORT_SAMPLE, detail, required=required)
    detail = (
        f"{len(proof.findings)} field(s) differ from a REST sample ({compared}); "
        f"first: {proof.findings[0].text()}"
    )
    fix = (
        "set HALO_READ_MODE=auto (syncs read through REST while reports disagree) or rest"
        if required
        else "nothing to do: with HALO_READ_MODE=auto such syncs read through REST (slower, "
        "same data) and say so in read_proof; HALO_READ_MODE=rest stops trying reports"
    )
    return failed(REPORT_SAMPLE, detail, fix, required=required)


async def check_assets(halo: HaloClient, settings: Settings) -> list[CheckResult]:
    """read:assets (one asset page) when ASSET_SYNC is plan or apply; edit:assets is never tried."""
    edit = f"halo.{EDIT_ASSETS}"
    if settings.asset_sync == "off":
        why = "ASSET_SYNC=off: assets are neither read nor written"
        return [skipped(READ_ASSETS.name, why), skipped(edit, why)]
    read, _ = await check_read(halo, settings, READ_ASSETS)
    if settings.asset_sync == "plan":
        return [read, skipped(edit, "ASSET_SYNC=plan writes no assets")]
    fix = (
        f"make sure {EDIT_ASSETS} is ticked on the API application ({APPLICATION}) and the agent "
        f"has 'Assets Access Level: Read and Modify'; {scope_hint(EDIT_ASSETS, settings)}"
    )
    why = (
        "unproven: only a write (POST /api/Asset) proves it and this check never writes to "
        "HaloPSA; a refusal shows as a 403 in the first asset run (GET /api/assets/plan)"
    )
    return [read, skipped(edit, why, fix)]
