"""The tab's view model and how it is built: the ticket, the snapshot's state and the client's coverage.

Coverage comes from the current snapshot, resolved for this one client under the current rules, so
the tab agrees with the targets API. When HaloPSA is slow or down the view still carries coverage,
for tickets whose client it has seen before, with a notice saying so.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from shared.generation import ClientRecord, Manifest, read_client, read_items, read_manifest
from shared.halo_client import HaloError, HaloNotFound
from shared.halo_models import Item, QuantityType, Ticket, as_date
from shared.schedule import longest_gap
from shared.store import Held, Pointer, Store
from shared.tab_computers import Computers, ComputerSource
from shared.targets import Snapshot, contract_covers, line_covers, resolve

log = logging.getLogger("halo_immy.tab")
EXPIRING_DAYS = 30

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
