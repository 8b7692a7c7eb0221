"""The technician tab's request entry: settings, access, the ticket id, then the view and its page.

The ticket comes from HaloPSA (a live call with a short timeout); see `shared.tab.view` for how the
view is built, `shared.tab.computers` for the computers and `shared.tab.render` for the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from datetime import UTC, datetime

from azure.core.exceptions import AzureError

from shared.core.text import parse_id
from shared.records.halo import Ticket
from shared.runtime.background import after_response
from shared.runtime.clients import halo_for_tab, immy_for_tab
from shared.runtime.process import get_settings, get_store
from shared.settings import Settings, SettingsError
from shared.store import read_cache
from shared.store.base import StoreError
from shared.store.repository import Store
from shared.store.tab_cache import TicketMemo
from shared.tab.render import Page, error_page, render
from shared.tab.view import ImmyAccess, TicketNotFound, build_tab

log = logging.getLogger("halo_immy.tab")
# How long ticket memos wait to go to storage together (see remember_after_response).
MEMO_LINGER_SECONDS = 0.2
# frame-ancestors when the allowed origins cannot be read (the settings are broken).
NOBODY = ["'none'"]


def principal_allowed(header: str | None, allowed_group: str | None, *, auth_enabled: bool) -> bool:
    """Whether App Service Authentication's principal may see the tab.

    With no group configured, everyone the function key lets in may. With a group, App Service
    Authentication must be on (`auth_enabled`: only then is `X-MS-CLIENT-PRINCIPAL` set by the
    platform rather than by whoever sends the request) and the principal must carry that group
    among its `groups` claims.
    """
    if not allowed_group:
        return True
    if not auth_enabled or not header:
        return False
    try:
        principal = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError):
        return False
    claims = principal.get("claims") if isinstance(principal, dict) else None
    if not isinstance(claims, list):
        return False
    groups = {
        str(c.get("val", "")).lower()
        for c in claims
        if isinstance(c, dict)
        and c.get("typ")
        in ("groups", "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups")
    }
    return allowed_group.lower() in groups


def _refusal(settings: Settings, principal: str | None) -> Page | None:
    """The 403 page when the principal may not see the tab (or who it is cannot be checked)."""
    origins = settings.frame_origins
    auth_enabled = settings.website_auth_enabled is True
    if settings.tab_allowed_group and not auth_enabled:
        # Without App Service Authentication anyone can send X-MS-CLIENT-PRINCIPAL: refuse, and
        # say what the administrator must change, rather than trust a forgeable header.
        log.warning("TAB_ALLOWED_GROUP is set but App Service Authentication is not enabled")
        return error_page(
            403,
            "sign-in-not-set-up",
            "Sign-in is not set up",
            "This tab is limited to an Entra group (TAB_ALLOWED_GROUP), but App Service "
            "Authentication is not enabled on the function app, so who you are cannot be "
            "checked. An administrator must turn on App Service Authentication (Entra ID), "
            "or remove TAB_ALLOWED_GROUP.",
            origins,
        )
    if not principal_allowed(principal, settings.tab_allowed_group, auth_enabled=auth_enabled):
        return error_page(
            403,
            "not-in-group",
            "Not allowed",
            "Your account is not in the group allowed to see this tab.",
            origins,
        )
    return None


def refusal_page(status: int, slug: str, title: str, message: str) -> Page:
    """An error page for a request refused before the tab's own checks (a bad query): framed
    by the configured origins, or by nobody when the settings cannot be read."""
    try:
        origins = get_settings().frame_origins
    except SettingsError:
        origins = NOBODY
    return error_page(status, slug, title, message, origins)


async def _immy_access(settings: Settings) -> ImmyAccess | None:
    """How this view reaches ImmyBot, or None when it is not configured."""
    immy = await immy_for_tab()
    if immy is None:
        return None
    return ImmyAccess(
        immy,
        base_url=immy.base_url,
        link_id=settings.immy_halo_link_id,
        stale_days=settings.immy_stale_days,
    )


# -- the whole request -----------------------------------------------------------------------------


async def tab_page(
    ticket_id: str,
    *,
    principal: str | None,
    now: datetime | None = None,
) -> Page:
    """The tab for `GET /api/technician-tab/ticket/{ticket_id}`: always a page, never a traceback."""
    try:
        settings = get_settings()
    except SettingsError as error:
        log.error("%s", error)
        return error_page(
            503, "not-configured", "Not configured", "The app's settings are incomplete.", NOBODY
        )
    origins = settings.frame_origins
    refused = _refusal(settings, principal)
    if refused is not None:
        return refused
    number = parse_id(ticket_id)
    if number is None:
        why = "The ticket id in the URL must be a positive whole number."
        return error_page(400, "bad-ticket-id", "Bad ticket id", why, origins)

    async def fetch(ticket: int) -> Ticket:
        halo = await halo_for_tab()
        return await halo.ticket(ticket)

    store = get_store()
    access = await _immy_access(settings)
    try:
        view = await build_tab(
            number,
            store=store,
            fetch_ticket=fetch,
            immy=access,
            sync_schedule=settings.sync_schedule,
            deadline_ms=settings.tab_deadline_ms,
            halo_timeout=settings.tab_halo_timeout_seconds,
            now=now or datetime.now(UTC),
        )
    except TicketNotFound:
        return error_page(
            404, "unknown-ticket", "No such ticket", f"HaloPSA has no ticket {number}.", origins
        )
    except (StoreError, AzureError) as error:
        log.error("tab for ticket %s: storage unavailable: %s", number, type(error).__name__)
        why = "The coverage data could not be read; try again."
        return error_page(503, "storage-unavailable", "Storage unavailable", why, origins)
    page = render("tab.html", origins, view=view)
    if view.remember is not None:
        remember_after_response(store, number, view.remember, now or datetime.now(UTC))
    return page


def remember_after_response(
    store: Store, ticket_id: int, client_id: int, seen_at: datetime
) -> None:
    """Memo which client a ticket belongs to (so the tab can show coverage while HaloPSA is down),
    off the view's critical path, and only when this process has not written it already.

    Memos wait together: the first one schedules a write after the response, and that write,
    `MEMO_LINGER_SECONDS` later, sends every memo waiting by then in one transaction, so the
    first views of a busy second cost one Table request, not one each. A failed write is logged
    and counted by `after_response` and nothing in it is marked as written, so the next view of
    each ticket tries again.
    """
    key = (store.identity, ticket_id)
    if read_cache.remembered_tickets.written(key, client_id):
        return
    memo = TicketMemo(ticket_id, client_id, seen_at)
    if read_cache.remembered_tickets.queue(store.identity, memo):
        after_response.submit("remember the clients of tickets", lambda: _write_memos(store))


def _write_memos(store: Store) -> None:
    # The after-response thread waits, the views do not: the memos of the views answered
    # meanwhile join this transaction (a memo is only needed once HaloPSA fails).
    time.sleep(MEMO_LINGER_SECONDS)
    memos = read_cache.remembered_tickets.take(store.identity)
    written = False
    try:
        store.remember_ticket_clients([(m.ticket_id, m.client_id, m.seen_at) for m in memos])
        written = True
    finally:
        read_cache.remembered_tickets.settle(store.identity, memos, written=written)
