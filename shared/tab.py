"""The technician tab: what a ticket's customer is covered for, and its computers.

The ticket comes from HaloPSA (the only live call, with a short timeout); coverage comes from the
current snapshot, resolved for this one client under the current rules, so the tab agrees with the
targets API. When HaloPSA is slow or down the page still renders coverage, for tickets whose client
it has seen before, with a notice saying so.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import secrets
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape

from shared.generation import (
    ClientRecord,
    Manifest,
    read_client,
    read_computers,
    read_items,
    read_manifest,
    read_matches,
)
from shared.halo_client import (
    HaloClient,
    HaloError,
    HaloNotFound,
    RequestBudget,
    RetryPolicy,
    TokenCache,
)
from shared.halo_models import Item, QuantityType, Ticket, as_date
from shared.immy_client import ImmyClient, ImmyError
from shared.immy_models import ImmyComputer
from shared.mapping import TenantMatch
from shared.schedule import longest_gap
from shared.settings import Settings, SettingsError, get_settings
from shared.store import Held, Pointer, Store, StoreError, get_store
from shared.targets import Snapshot, contract_covers, line_covers, resolve

log = logging.getLogger("halo_immy.tab")
EXPIRING_DAYS = 30
TEMPLATES = Path(__file__).resolve().parent / "templates"


# -- view model --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContractRow:
    """An active contract of the client."""

    ref: str
    contract_type: str
    start: date | None
    end: date | None
    expiring: bool
    in_grace: bool = False


@dataclass(frozen=True, slots=True)
class ItemRow:
    """A recurring item billed to the client today."""

    item: str
    quantity: str  # "14", or "14 (users)" / "calculated (users)" for a calculated quantity
    invoice_id: int
    end: date | None
    expiring: bool


@dataclass(frozen=True, slots=True)
class SoftwareRow:
    """A software the client is entitled to under the current rules, and why."""

    software: str
    reasons: list[str]
    expiring: bool


@dataclass(frozen=True, slots=True)
class ComputerRow:
    """A computer in the client's deployment tenant."""

    name: str
    online: bool | None
    last_seen: datetime | None
    user_email: str
    url: str | None
    is_ticket_user: bool


@dataclass(frozen=True, slots=True)
class Computers:
    """The computers part of the tab: rows, or a plain sentence why there are none."""

    rows: list[ComputerRow] = field(default_factory=list)
    note: str | None = None
    source: str = ""


@dataclass(slots=True)
class TabView:
    """Everything the template shows."""

    ticket_id: int
    ticket: Ticket | None = None
    client_id: int | None = None
    client_name: str = ""
    site_name: str = ""
    contracts: list[ContractRow] = field(default_factory=list)
    items: list[ItemRow] = field(default_factory=list)
    software: list[SoftwareRow] = field(default_factory=list)
    computers: Computers = field(default_factory=Computers)
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    synced_at: datetime | None = None
    generated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class TicketNotFound(Exception):
    """HaloPSA says the ticket does not exist."""


# Computers of a client: (generation, client id, ticket user's email, synced at) -> Computers.
ComputerSource = Callable[[str, int, str, datetime], Awaitable[Computers]]


# -- building the view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SnapshotState:
    pointer: Pointer | None
    manifest: Manifest | None
    held: Held | None
    last_outcome: str | None


async def _snapshot_state(store: Store) -> _SnapshotState:
    # Four small reads: the pointer first, the rest side by side (each is a round trip).
    pointer = await asyncio.to_thread(store.current)
    manifest, held, runs = await asyncio.gather(
        asyncio.to_thread(lambda: read_manifest(store, pointer.generation)[0] if pointer else None),
        asyncio.to_thread(store.held),
        asyncio.to_thread(store.recent_runs, 1),
    )
    return _SnapshotState(pointer, manifest, held, runs[0].get("outcome") if runs else None)


async def build_tab(
    ticket_id: int,
    *,
    store: Store,
    fetch_ticket: Callable[[int], Awaitable[Ticket]],
    computers: ComputerSource | None,
    sync_schedule: str,
    halo_timeout: float,
    now: datetime,
) -> TabView:
    """Gather the ticket (HaloPSA) and the snapshot state concurrently, then the client's coverage."""
    view = TabView(ticket_id=ticket_id, generated_at=now)
    ticket_task = asyncio.wait_for(fetch_ticket(ticket_id), timeout=halo_timeout)
    state_task = _snapshot_state(store)
    ticket_result, state = await asyncio.gather(ticket_task, state_task, return_exceptions=True)
    if isinstance(state, BaseException):
        raise state

    client_id: int | None = None
    if isinstance(ticket_result, HaloNotFound):
        raise TicketNotFound(ticket_id)
    if isinstance(ticket_result, Ticket):
        view.ticket = ticket_result
        client_id = ticket_result.client_id
        view.client_name, view.site_name = ticket_result.client_name, ticket_result.site_name
        if client_id is not None:
            await asyncio.to_thread(store.remember_ticket_client, ticket_id, client_id, now)
        else:
            view.notices.append("This ticket has no client in HaloPSA.")
    else:
        why = (
            "did not answer in time"
            if isinstance(ticket_result, TimeoutError)
            else "is unavailable"
        )
        if not isinstance(ticket_result, TimeoutError | HaloError):
            log.warning("ticket %s: %s", ticket_id, type(ticket_result).__name__)
        client_id = await asyncio.to_thread(store.ticket_client, ticket_id)
        view.notices.append(
            f"HaloPSA {why}: coverage is from the last sync"
            if client_id is not None
            else f"HaloPSA {why}, and this ticket's client is not known yet: try again shortly."
        )
    view.client_id = client_id
    _freshness(view, state, sync_schedule, now)
    if client_id is None or state.pointer is None or state.manifest is None:
        return view

    generation = state.pointer.generation
    manifest, synced_at = state.manifest, state.pointer.synced_at

    async def machines() -> Computers:
        # Side by side with the coverage reads: the tenant comes from the snapshot's mapping.
        if computers is None:
            return Computers(note="ImmyBot is not configured: no computer list.")
        if not manifest.immybot.configured:
            return Computers(note="The last sync did not include ImmyBot yet.")
        email = view.ticket.user_email if view.ticket else ""
        return await computers(generation, client_id, email, synced_at)

    record, items, found = await asyncio.gather(
        asyncio.to_thread(read_client, store, generation, client_id),
        asyncio.to_thread(_items, store, generation),
        machines(),
    )
    if record is None:
        view.notices.append(
            "This client is not in the last sync (new, or not visible to the API user)."
        )
        return view
    view.client_name = view.client_name or record.client.name
    _coverage(view, record, items, manifest, now.date())
    view.computers = found
    return view


def _freshness(view: TabView, state: _SnapshotState, schedule: str, now: datetime) -> None:
    if state.pointer is None:
        view.warnings.append("No sync has completed yet: coverage is not known.")
        return
    view.synced_at = state.pointer.synced_at
    stale_after = 2 * _interval(schedule)
    age = now - state.pointer.synced_at
    if age > stale_after:
        hours = age.total_seconds() / 3600
        view.warnings.append(
            f"The data is {hours:.1f} hours old: the sync has not succeeded lately."
        )
    if state.held is not None:
        why = _held_because(state.held.reason)
        view.warnings.append(
            f"The last sync was held by the mass-change guard{why} and awaits approval: "
            "coverage shown is from the run before it."
        )
    elif state.last_outcome == "failed":
        view.warnings.append("The last sync failed: the data is from the run before it.")


_HELD_BECAUSE = {
    "targets": "targets would drop",
    "mapped_targets": "targets would lose their ImmyBot tenant",
    "mapped_tenants": "ImmyBot tenants would be lost",
    "rejects": "HaloPSA records were rejected",
    "empty": "a HaloPSA record type came back empty",
}


def _held_because(reason: str) -> str:
    try:
        parts = json.loads(reason)
    except ValueError:
        return ""
    found = [_HELD_BECAUSE[k] for k in _HELD_BECAUSE if isinstance(parts, dict) and k in parts]
    return f" ({'; '.join(found)})" if found else ""


@lru_cache(maxsize=8)
def _interval(schedule: str) -> timedelta:
    try:
        return longest_gap(schedule)
    except ValueError:
        return timedelta(minutes=15)


def quantity_text(quantity: float | None, quantity_type: str, *, calculated: bool) -> str:
    """A line's quantity for people: a calculated one says so, and is never shown as 0."""
    if not calculated:
        return f"{quantity or 0:g}"
    return (
        f"{quantity:g} ({quantity_type})"
        if quantity is not None
        else f"calculated ({quantity_type})"
    )


def _coverage(
    view: TabView, record: ClientRecord, items: Mapping[int, Item], manifest: Manifest, today: date
) -> None:
    soon = today + timedelta(days=EXPIRING_DAYS)
    sites = {s.id: s.name for s in record.sites}
    if not view.site_name and len(record.sites) == 1:
        view.site_name = record.sites[0].name
    for contract in record.contracts:
        covers, in_grace = contract_covers(contract, today)
        if not covers:
            continue
        end = as_date(contract.end_date)
        view.contracts.append(
            ContractRow(
                ref=contract.ref,
                contract_type=contract.contracttype_name
                + (f" ({sites[contract.site_id]})" if contract.site_id in sites else ""),
                start=as_date(contract.start_date),
                end=end,
                expiring=end is not None and end <= soon,
                in_grace=in_grace,
            )
        )
    for invoice in record.invoices:
        for line in invoice.lines:
            if not line_covers(invoice, line, today):
                continue
            item = items.get(line.item_id) if line.item_id is not None else None
            schedule_end = as_date(invoice.schedule.end_date) if invoice.schedule else None
            end = as_date(line.enddate) or as_date(invoice.enddate) or schedule_end
            view.items.append(
                ItemRow(
                    item=line.item_shortdescription.strip() or (item.name if item else "?"),
                    quantity=quantity_text(
                        line.known_quantity,
                        QuantityType.name_of(line.recurring_invoice_quantity_type),
                        calculated=line.calculated,
                    ),
                    invoice_id=invoice.id,
                    end=end,
                    expiring=end is not None and end <= soon,
                )
            )
    # Resolve each rule against this one client: the same semantics as the targets API.
    mini = Snapshot.build(
        [record.client], record.sites, record.contracts, record.invoices, items.values()
    )
    for entry in sorted(manifest.rules.values(), key=lambda e: e.software.casefold()):
        found = resolve(mini, entry.rule, today)
        if not found:
            continue
        reasons, expiring = [], False
        for reason in found[0].reasons:
            if reason.kind == "contract":
                reasons.append(
                    f"contract {reason.ref or reason.contract_id} ({reason.contract_type})"
                )
            else:
                quantity = quantity_text(
                    reason.quantity,
                    reason.quantity_type,
                    calculated=reason.quantity_kind == "calculated",
                )
                reasons.append(f"{reason.item}, qty {quantity} (invoice {reason.invoice_id})")
            expiring = expiring or (reason.end_date is not None and reason.end_date <= soon)
        view.software.append(SoftwareRow(entry.software, reasons, expiring))
    view.contracts.sort(key=lambda r: (r.end or date.max, r.ref))
    view.items.sort(key=lambda r: r.item.casefold())


_items_cache: dict[tuple[str, str], dict[int, Item]] = {}
_items_lock = threading.Lock()


def _items(store: Store, generation: str) -> dict[int, Item]:
    key = (store.identity, generation)
    with _items_lock:
        hit = _items_cache.get(key)
    if hit is not None:
        return hit
    items = {i.id: i for i in read_items(store, generation)}
    with _items_lock:
        _items_cache.clear()  # one generation at a time is all a tab needs
        _items_cache[key] = items
    return items


# -- access and rendering ------------------------------------------------------------------------


def principal_allowed(header: str | None, allowed_group: str | None) -> bool:
    """Whether App Service Authentication's principal may see the tab.

    With no group configured, everyone the function key lets in may. With a group, the request
    must carry the platform's `X-MS-CLIENT-PRINCIPAL` (App Service Authentication on) with that
    group among its `groups` claims.
    """
    if not allowed_group:
        return True
    if not header:
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


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["http_url"] = http_url
    return env


def http_url(value: str | None) -> str | None:
    """`value` if it is an http(s) URL, else None: no javascript: or data: link is ever rendered."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered page and the headers it must go out with."""

    status: int
    html: str
    headers: dict[str, str]


def security_headers(frame_origins: Sequence[str], nonce: str) -> dict[str, str]:
    """CSP that lets only HaloPSA frame the page and only our inline style run."""
    policy = "; ".join(
        [
            "default-src 'none'",
            f"style-src 'nonce-{nonce}'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors " + " ".join(frame_origins),
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }


def render(template: str, frame_origins: Sequence[str], status: int = 200, **context: Any) -> Page:
    """Render a template with a fresh CSP nonce."""
    nonce = secrets.token_urlsafe(16)
    html = _environment().get_template(template).render(nonce=nonce, **context)
    return Page(status, html, security_headers(frame_origins, nonce))


def error_page(status: int, title: str, message: str, frame_origins: Sequence[str]) -> Page:
    """A small styled error page (400, 403, 404, 503) with no internals in it."""
    return render("error.html", frame_origins, status, title=title, message=message, code=status)


# -- computers ---------------------------------------------------------------------------------------


def computer_rows(
    computers: Sequence[ImmyComputer], email: str, base_url: str
) -> list[ComputerRow]:
    """Rows for the tab: the ticket user's computers first, then online ones, then by name."""
    wanted = email.strip().casefold()
    rows = [
        ComputerRow(
            name=c.name or f"computer {c.id}",
            online=c.online,
            last_seen=c.last_seen,
            user_email=c.primary_user_email,
            url=f"{base_url}/computers/{c.id}",
            is_ticket_user=bool(wanted) and c.primary_user_email.strip().casefold() == wanted,
        )
        for c in computers
    ]
    rows.sort(key=lambda r: (not r.is_ticket_user, not r.online, r.name.casefold()))
    return rows


def immybot_computers(store: Store, settings: Settings, live_timeout: float) -> ComputerSource:
    """Computers from the snapshot, or live from ImmyBot when the snapshot is older than
    IMMY_LIVE_AFTER_MINUTES (falling back to the snapshot if ImmyBot does not answer in time)."""
    immy = settings.immybot
    assert immy is not None

    async def source(generation: str, client_id: int, email: str, synced_at: datetime) -> Computers:
        match = (await asyncio.to_thread(_matches, store, generation)).get(client_id)
        if match is None or match.tenant_id is None:
            why = match.detail if match else "no ImmyBot tenant has this client's name"
            return Computers(
                note=f"This client has no ImmyBot tenant ({why}): map it in /api/mappings."
            )
        tenant_id = match.tenant_id
        age = datetime.now(UTC) - synced_at
        if age > timedelta(minutes=immy.live_after_minutes):
            try:
                live = await asyncio.wait_for(_live_computers(settings, tenant_id), live_timeout)
                return Computers(
                    rows=computer_rows(live, email, immy.base_url), source="live from ImmyBot"
                )
            except (TimeoutError, ImmyError) as error:
                log.warning("live computers for tenant %s: %s", tenant_id, type(error).__name__)
        stored = await asyncio.to_thread(read_computers, store, generation, tenant_id)
        rows = computer_rows(stored, email, immy.base_url)
        note = None if rows else f"ImmyBot tenant {match.tenant_name} has no computers."
        return Computers(
            rows=rows, note=note, source=f"ImmyBot tenant {match.tenant_name}, as of the last sync"
        )

    return source


async def _live_computers(settings: Settings, tenant_id: int) -> list[ImmyComputer]:
    immy = ImmyClient.from_settings(settings)
    assert immy is not None
    async with immy:
        return await immy.computers(tenant_id)


_matches_cache: dict[tuple[str, str], dict[int, TenantMatch]] = {}


def _matches(store: Store, generation: str) -> dict[int, TenantMatch]:
    _, version = read_manifest(store, generation)
    key = (store.identity + generation, version)
    with _items_lock:
        hit = _matches_cache.get(key)
    if hit is not None:
        return hit
    matches = read_matches(store, generation)
    with _items_lock:
        _matches_cache.clear()
        _matches_cache[key] = matches
    return matches


# -- the whole request -----------------------------------------------------------------------------

MAX_TICKET_ID = 2**31 - 1
_tokens = TokenCache()


async def tab_page(
    ticket_id: str,
    *,
    principal: str | None,
    now: datetime | None = None,
    computers: ComputerSource | None = None,
) -> Page:
    """The tab for `GET /api/technician-tab/ticket/{ticket_id}`: always a page, never a traceback."""
    try:
        settings = get_settings()
    except SettingsError as error:
        log.error("%s", error)
        return error_page(503, "Not configured", "The app's settings are incomplete.", ["'none'"])
    origins = settings.frame_origins
    if not principal_allowed(principal, settings.tab_allowed_group):
        return error_page(
            403, "Not allowed", "Your account is not in the group allowed to see this tab.", origins
        )
    if not ticket_id.isdigit() or not 0 < int(ticket_id) <= MAX_TICKET_ID:
        return error_page(
            400,
            "Bad ticket id",
            "The ticket id in the URL must be a positive whole number.",
            origins,
        )
    number = int(ticket_id)

    async def fetch(ticket: int) -> Ticket:
        async with HaloClient.from_settings(
            settings,
            budget=RequestBudget(settings.halo_requests_per_minute),
            # No retries, not even after a 429: its pause would outlast the tab's time budget.
            retry=RetryPolicy(max_attempts=1, max_throttled=0),
            timeout=settings.tab_halo_timeout_seconds,
            token_cache=_tokens,
        ) as halo:
            return await halo.ticket(ticket)

    store = get_store()
    if computers is None and settings.immybot is not None:
        computers = immybot_computers(store, settings, settings.tab_halo_timeout_seconds)
    try:
        view = await build_tab(
            number,
            store=store,
            fetch_ticket=fetch,
            computers=computers,
            sync_schedule=settings.sync_schedule,
            halo_timeout=settings.tab_halo_timeout_seconds,
            now=now or datetime.now(UTC),
        )
    except TicketNotFound:
        return error_page(404, "No such ticket", f"HaloPSA has no ticket {number}.", origins)
    except StoreError as error:
        log.error("tab for ticket %s: storage unavailable: %s", number, error)
        return error_page(
            503, "Storage unavailable", "The coverage data could not be read; try again.", origins
        )
    return render("tab.html", origins, view=view)
