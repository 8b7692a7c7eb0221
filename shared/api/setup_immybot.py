"""The setup check's ImmyBot part: the Entra token, then one small read per API the app uses.

Each read is the smallest request that needs the right (one tenant, one computer), through the
app's own ImmyClient and settings. Nothing here writes to ImmyBot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from shared.api.setup_models import CheckResult, failed, missing, ok, skipped
from shared.immybot.client import ImmyClient
from shared.immybot.errors import (
    ImmyAuthError,
    ImmyAuthorityUnavailable,
    ImmyError,
    ImmyUnavailable,
)
from shared.outbound.budget import RetryPolicy
from shared.settings import Settings

TOKEN = "immybot.token"  # noqa: S105 - a check name
TENANTS = "immybot.tenants"
COMPUTERS = "immybot.computers"
LINKS = "immybot.provider_links"
TAGS = "immybot.tags"
INVENTORY = "immybot.inventory"
# A search text no display name holds: the probe proves the right and the answer's shape, cheaply.
INVENTORY_PROBE = "halo-immy setup check"
ROLE = (
    "the ImmyBot user of the app registration needs that right across every tenant (admin "
    "rights, or a role with it: docs/immybot-setup.md, section 2)"
)
WRONG_PERSON = (
    "ImmyBot refused the token: the person's AD External ID must be the Enterprise "
    "Application's Object ID, and that person must be an ImmyBot user (docs/immybot-setup.md, "
    "section 2)"
)
RETRY = "run the check again; if it persists, check IMMY_BASE_URL and ImmyBot's status"
# Entra's OAuth error code -> the setting that is wrong when Entra answers it.
ENTRA_CODES = {
    "invalid_client": "IMMY_CLIENT_SECRET must be the secret's Value (not its ID), not expired",
    "unauthorized_client": "IMMY_CLIENT_ID must be the app registration's Application (client) "
    "ID, registered in the directory IMMY_TENANT_ID names",
    "invalid_scope": "IMMY_SCOPE (default <IMMY_BASE_URL>/.default) must be the ImmyBot "
    "instance URL plus /.default: check IMMY_BASE_URL",
    "invalid_request": "IMMY_TENANT_ID must be the Directory (tenant) ID of the MSP's Entra tenant",
    "invalid_tenant": "IMMY_TENANT_ID must be the Directory (tenant) ID of the MSP's Entra tenant",
}


def client_for_check(settings: Settings) -> ImmyClient | None:
    """An ImmyClient from settings that gives up sooner than a sync's; None when not configured.

    It has msal applications of its own: the check proves the secret against Entra ID now, not a
    token the tab or the sync cached before the secret changed."""
    return ImmyClient.from_settings(settings, timeout=15.0, retry=RetryPolicy(max_attempts=2))


async def immy_checks(settings: Settings) -> list[CheckResult]:
    """Every ImmyBot check, in a fixed order; one skipped line when ImmyBot is not configured."""
    immy = client_for_check(settings)
    if immy is None:
        why = "ImmyBot is not configured (IMMY_BASE_URL and the other IMMY_* settings are unset)"
        return [skipped("immybot", why)]
    async with immy:
        token = await check_token(immy)
        if not token.passed:
            why = "needs an ImmyBot token (see immybot.token)"
            names = (TENANTS, COMPUTERS, LINKS, TAGS, INVENTORY)
            return [token, *(skipped(n, why) for n in names)]
        rest = await asyncio.gather(
            check_tenants(immy),
            check_computers(immy),
            check_links(immy, settings.immy_halo_link_id),
            check_tags(immy, settings.immy_tags),
            check_inventory(immy),
        )
    return [token, *rest]


async def check_token(immy: ImmyClient) -> CheckResult:
    """An Entra ID token for ImmyBot: a refusal names the setting Entra's error code points at."""
    try:
        await immy.token()
    except ImmyAuthError as error:
        fix = ENTRA_CODES.get(error.code or "", "check the four IMMY_* settings")
        return failed(TOKEN, str(error), fix)
    except ImmyUnavailable as error:
        # msal reads the authority's configuration first: an unknown tenant fails there.
        fix = (
            f"{ENTRA_CODES['invalid_tenant']}; and IMMY_AUTHORITY_HOST, if set, Entra's host"
            if isinstance(error, ImmyAuthorityUnavailable)
            else "Entra ID did not answer: check IMMY_AUTHORITY_HOST (default "
            "https://login.microsoftonline.com) and the network"
        )
        return failed(TOKEN, str(error), fix)
    except ImmyError as error:
        return failed(TOKEN, str(error), RETRY)
    return ok(TOKEN, "Entra ID issued a token for ImmyBot")


async def _probe(
    name: str, right: str, read: Callable[[], Awaitable[Any]], *, required: bool = True
) -> tuple[Any, CheckResult | None]:
    """Run one read; on failure, the check line saying what is wrong and how to fix it."""
    try:
        return await read(), None
    except ImmyAuthError as error:
        fix = WRONG_PERSON if error.status == 401 else f"{right}: {ROLE}"
        return None, missing(name, str(error), fix, required=required)
    except ImmyError as error:
        return None, failed(name, str(error), RETRY, required=required)


async def check_tenants(immy: ImmyClient) -> CheckResult:
    """`GET /api/v1/tenants`, one tenant: an empty answer means the user sees no tenant."""
    path = "/api/v1/tenants"
    body, bad = await _probe(
        TENANTS, "reading tenants", lambda: immy.get_json(path, {"Page": "1", "PageSize": "1"})
    )
    if bad is not None:
        return bad
    if not isinstance(body, list):
        return failed(TENANTS, f"GET {path}: the answer is not a list", RETRY)
    if not body:
        return missing(TENANTS, f"GET {path}: no tenant is visible", f"reading tenants: {ROLE}")
    return ok(TENANTS, f"GET {path}: tenants are visible")


async def check_computers(immy: ImmyClient) -> CheckResult:
    """`GET /api/v1/computers/paged`, one computer, offline ones counted."""
    path = "/api/v1/computers/paged"
    params = {"skip": "0", "take": "1", "includeOffline": "true"}
    body, bad = await _probe(COMPUTERS, "reading computers", lambda: immy.get_json(path, params))
    if bad is not None:
        return bad
    count = body.get("count", body.get("totalCount")) if isinstance(body, dict) else None
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        return failed(COMPUTERS, f"GET {path}: the answer has no 'results' list", RETRY)
    shown = f"{count} computer(s)" if isinstance(count, int) else "an answer"
    return ok(COMPUTERS, f"GET {path}: {shown}")


async def check_links(immy: ImmyClient, link_id: int | None) -> CheckResult:
    """IMMY_HALO_LINK_ID's provider link and its clients; skipped when the setting is unset."""
    if link_id is None:
        why = "IMMY_HALO_LINK_ID is unset: a sync uses the one enabled link named Halo, if any"
        return skipped(LINKS, why)
    links, bad = await _probe(LINKS, "reading integrations", immy.provider_links)
    if bad is not None:
        return bad
    if not any(link.id == link_id for link in links):
        fix = (
            "set IMMY_HALO_LINK_ID to the HaloPSA link's id (ImmyBot: Show more > Integrations; "
            "the id is in the link's URL), or unset it"
        )
        return failed(LINKS, f"IMMY_HALO_LINK_ID {link_id} is not a provider link", fix)
    clients, bad = await _probe(
        LINKS, "reading integrations", lambda: immy.provider_clients(link_id)
    )
    if bad is not None:
        return bad
    return ok(LINKS, f"provider link {link_id}: {len(clients)} client(s)")


async def check_tags(immy: ImmyClient, mode: str) -> CheckResult:
    """`GET /api/v1/tags` when IMMY_TAGS is plan or apply; its writes are never tried."""
    if mode == "off":
        return skipped(TAGS, "IMMY_TAGS=off: no tag is read or written")
    tags, bad = await _probe(TAGS, "reading tags", immy.tags)
    if bad is not None:
        return bad
    writes = (
        "; IMMY_TAGS=apply also creates tags and adds/removes them on tenants: unproven, this "
        "check never writes to ImmyBot"
        if mode == "apply"
        else "; IMMY_TAGS=plan writes nothing"
    )
    return ok(TAGS, f"GET /api/v1/tags: {len(tags)} tag(s){writes}")


async def check_inventory(immy: ImmyClient) -> CheckResult:
    """One inventory search (`all-inventory-software/search-by-name`), for a text nothing holds.
    Not required: without it a sync still serves, but every installed count is unknown."""
    rows, bad = await _probe(
        INVENTORY,
        "searching computers' inventory",
        lambda: immy.inventory_search(INVENTORY_PROBE),
        required=False,
    )
    if bad is not None:
        return bad
    return ok(
        INVENTORY,
        f"GET /api/v1/computers/all-inventory-software/search-by-name: {len(rows)} row(s) for "
        "a name nothing has; a sync can count where each rule's software is installed",
        required=False,
    )
