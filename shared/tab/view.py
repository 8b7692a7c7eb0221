"""The tab's view model and how it is built: the ticket, the snapshot's state and the client's coverage.

Coverage comes from the current snapshot, resolved for this one client under the current rules, so
the tab agrees with the targets API. When HaloPSA is slow or down the view still carries coverage,
for tickets whose client it has seen before, with a notice saying so.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from shared.core.schedule import longest_gap
from shared.core.targets import Snapshot, contract_covers, line_covers, resolve
from shared.halo.errors import HaloError, HaloNotFound
from shared.immybot.client import ImmyClient
from shared.records.halo import Item, QuantityType, Ticket, as_date
from shared.store.generations import ClientRecord, Manifest, read_computers
from shared.store.repository import Store
from shared.tab.computers import Computers, TenantRead, Wanted, computers_view, read_tenant
from shared.tab.snapshot import (
    GenerationData,
    SyncStatus,
    client_record,
    generation_data,
    sync_status,
)

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
    ends: date | None = None  # the earliest end among its reasons, when within 30 days


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
    technician_url: str | None = None  # ImmyBot's Technician Tools for this ticket
    remember: int | None = None  # the ticket's client, to memo after the response


class TicketNotFound(Exception):
    """HaloPSA says the ticket does not exist."""


# -- building the view -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImmyAccess:
    """How the tab reaches ImmyBot: a client, where its pages are, and how many computers to read."""

    client: ImmyClient
    base_url: str
    cap: int
    link_id: int | None = None


async def build_tab(
    ticket_id: int,
    *,
    store: Store,
    fetch_ticket: Callable[[int], Awaitable[Ticket]],
    immy: ImmyAccess | None,
    sync_schedule: str,
    deadline_ms: int,
    halo_timeout: float,
    now: datetime,
) -> TabView:
    """The ticket (HaloPSA), the snapshot's state and then the client's coverage, computers and
    their software. Everything live shares one deadline, `deadline_ms` from now: what misses it
    is shown as unknown with the reason, never as an error."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + deadline_ms / 1000
    view = TabView(ticket_id=ticket_id, generated_at=now)
    if immy is not None and immy.link_id is not None:
        view.technician_url = (
            f"{immy.base_url}/technician-pod/psa/{immy.link_id}/ticket/{ticket_id}"
        )

    async def snapshot() -> tuple[SyncStatus, GenerationData | None]:
        status = await sync_status(store)
        if status.pointer is None:
            return status, None
        return status, await generation_data(store, status.pointer.generation)

    ticket_result, state = await asyncio.gather(
        asyncio.wait_for(fetch_ticket(ticket_id), min(halo_timeout, deadline_ms / 1000)),
        snapshot(),
        return_exceptions=True,
    )
    if isinstance(state, BaseException):
        raise state
    status, data = state

    client_id: int | None = None
    if isinstance(ticket_result, HaloNotFound):
        raise TicketNotFound(ticket_id)
    if isinstance(ticket_result, Ticket):
        view.ticket = ticket_result
        client_id = ticket_result.client_id
        view.client_name, view.site_name = ticket_result.client_name, ticket_result.site_name
        if client_id is not None:
            view.remember = client_id  # written after the response (shared.tab.page), not before
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
    _freshness(view, status, sync_schedule, now)
    if client_id is None or status.pointer is None or data is None:
        return view

    generation = status.pointer.generation
    email = view.ticket.user_email if view.ticket else ""
    computers_note: str | None = None
    tenant: tuple[int, str] | None = None
    if immy is None:
        computers_note = "ImmyBot is not configured: no computer list."
    elif not data.manifest.immybot.configured:
        computers_note = "The last sync did not include ImmyBot yet."
    else:
        match = data.matches.get(client_id)
        if match is None or match.tenant_id is None:
            detail = match.detail if match else "no ImmyBot tenant has this client's name"
            computers_note = (
                f"This client has no ImmyBot tenant ({detail}): map it in /api/mappings."
            )
        else:
            tenant = (match.tenant_id, match.tenant_name or str(match.tenant_id))

    async def machines() -> TenantRead | None:
        # Side by side with the client's record: the tenant comes from the snapshot's mapping.
        if immy is None or tenant is None:
            return None
        tenant_id = tenant[0]
        return await read_tenant(
            immy.client,
            tenant_id,
            email,
            cap=immy.cap,
            deadline=deadline,
            deadline_ms=deadline_ms,
            stored=lambda: read_computers(store, generation, tenant_id),
        )

    record, found = await asyncio.gather(client_record(store, generation, client_id), machines())
    if record is None:
        view.notices.append(
            "This client is not in the last sync (new, or not visible to the API user)."
        )
        return view
    view.client_name = view.client_name or record.client.name
    wanted = _coverage(view, record, data.items, data.manifest, now.date())
    if found is not None and immy is not None and tenant is not None:
        view.computers = computers_view(found, wanted, email, immy.base_url, tenant[1])
    else:
        view.computers = Computers(note=computers_note)
    return view


def _freshness(view: TabView, state: SyncStatus, schedule: str, now: datetime) -> None:
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
) -> list[Wanted]:
    """Fill in contracts, items and software rows; return the software to look for on computers."""
    soon = today + timedelta(days=EXPIRING_DAYS)
    # Resolve each rule against this one client: the same semantics as the targets API.
    mini = Snapshot.build(
        [record.client], record.sites, record.contracts, record.invoices, items.values()
    )
    wanted: list[Wanted] = []
    in_grace: set[int] = set()  # contracts past their end that a rule's grace days still count
    for entry in sorted(manifest.rules.values(), key=lambda e: e.software.casefold()):
        found = resolve(mini, entry.rule, today)
        if not found:
            continue
        reasons: list[str] = []
        ends: list[date] = []
        for reason in found[0].reasons:
            if reason.kind == "contract":
                note = " in grace" if reason.in_grace else ""
                reasons.append(
                    f"contract {reason.ref or reason.contract_id} ({reason.contract_type}){note}"
                )
                if reason.in_grace and reason.contract_id is not None:
                    in_grace.add(reason.contract_id)
            else:
                quantity = quantity_text(
                    reason.quantity,
                    reason.quantity_type,
                    calculated=reason.quantity_kind == "calculated",
                )
                reasons.append(f"{reason.item}, qty {quantity} (invoice {reason.invoice_id})")
            if reason.end_date is not None and reason.end_date <= soon:
                ends.append(reason.end_date)
        view.software.append(
            SoftwareRow(entry.software, reasons, bool(ends), min(ends) if ends else None)
        )
        wanted.append(Wanted(entry.software, tuple(entry.rule.detect_patterns)))

    sites = {s.id: s.name for s in record.sites}
    if not view.site_name and len(record.sites) == 1:
        view.site_name = record.sites[0].name
    for contract in record.contracts:
        covers, _ = contract_covers(contract, today)
        grace = not covers and contract.id in in_grace
        if not (covers or grace):
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
                in_grace=grace,
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
    view.contracts.sort(key=lambda r: (r.end or date.max, r.ref))
    view.items.sort(key=lambda r: r.item.casefold())
    return wanted
