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
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from shared.core.coverage import ContractRow, ItemRow, SoftwareRow, coverage
from shared.core.generation import Manifest
from shared.core.installed import StoredComputer, by_tenant
from shared.core.mapping import TenantMatch
from shared.core.schedule import longest_gap
from shared.core.site_links import SiteLink
from shared.halo.errors import HaloError, HaloNotFound
from shared.immybot.client import ImmyClient
from shared.immybot.pages import technician_tools
from shared.records.halo import Ticket
from shared.records.immybot import ImmyComputer
from shared.store import read_cache
from shared.store.read_cache import GenerationData, ServingState
from shared.store.repository import Store
from shared.tab.computers import Computers, Reach, computers_view, live_computers, tenant_read
from shared.tab.numbers import heading_numbers
from shared.tab.snapshot import (
    client_record,
    generation_data,
    site_links,
    sync_status,
    tenant_computers,
)

log = logging.getLogger("halo_immy.tab")


# -- view model --------------------------------------------------------------------------------


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
    # Software -> "billed 25 · targeted 5 · installed 2", the reconciliation's numbers.
    numbers: dict[str, str] = field(default_factory=dict)
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
    """How the tab reaches ImmyBot: a client, where its pages are, the HaloPSA link (for
    Technician Tools) and `IMMY_STALE_DAYS` (which computers count as targeted)."""

    client: ImmyClient
    base_url: str
    link_id: int | None = None
    stale_days: int = 30


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
    deadline = asyncio.get_running_loop().time() + deadline_ms / 1000
    view = TabView(ticket_id=ticket_id, generated_at=now)
    if immy is not None and immy.link_id is not None:
        view.technician_url = technician_tools(immy.base_url, immy.link_id, ticket_id)

    async def snapshot() -> tuple[ServingState, GenerationData | None]:
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
    view.client_id = await _client_of(view, ticket_result, store)
    _freshness(view, status, sync_schedule, now)
    if view.client_id is None or status.pointer is None or data is None:
        return view
    live = _Live(store, status.pointer.generation, immy, deadline, deadline_ms)
    await _client_part(view, view.client_id, data, live, now)
    return view


async def _client_of(
    view: TabView, ticket_result: Ticket | BaseException, store: Store
) -> int | None:
    """The ticket's client, from HaloPSA or (when it failed) this store's memo; notes on `view`."""
    if isinstance(ticket_result, HaloNotFound):
        raise TicketNotFound(view.ticket_id)
    if isinstance(ticket_result, Ticket):
        view.ticket = ticket_result
        view.client_name, view.site_name = ticket_result.client_name, ticket_result.site_name
        if ticket_result.client_id is not None:
            view.remember = ticket_result.client_id  # written after the response (shared.tab.page)
        else:
            view.notices.append("This ticket has no client in HaloPSA.")
        return ticket_result.client_id
    why = "did not answer in time" if isinstance(ticket_result, TimeoutError) else "is unavailable"
    if not isinstance(ticket_result, TimeoutError | HaloError):
        log.warning("ticket %s: %s", view.ticket_id, type(ticket_result).__name__)
    # This process's own memo first (written or still waiting to be): no Table read.
    client_id = read_cache.remembered_tickets.known(store.identity, view.ticket_id)
    if client_id is None:
        client_id = await asyncio.to_thread(store.ticket_client, view.ticket_id)
    view.notices.append(
        f"HaloPSA {why}: coverage is from the last sync"
        if client_id is not None
        else f"HaloPSA {why}, and this ticket's client is not known yet: try again shortly."
    )
    return client_id


@dataclass(frozen=True, slots=True)
class _Live:
    """What the client's part of a view reads: the store's generation and ImmyBot, by a deadline."""

    store: Store
    generation: str
    immy: ImmyAccess | None
    deadline: float
    deadline_ms: int

    async def listed(self, tenant_id: int | None) -> list[ImmyComputer] | str | None:
        """The tenant's computers live from ImmyBot (or why not); None without a tenant."""
        if self.immy is None or tenant_id is None:
            return None
        return await live_computers(
            self.immy.client, tenant_id, deadline=self.deadline, deadline_ms=self.deadline_ms
        )

    async def links(
        self, manifest: Manifest, tenant_id: int | None
    ) -> Mapping[int, SiteLink] | None:
        """The generation's computer-to-site links when a rule is site-scoped and the client has
        a tenant (None otherwise, or when the generation has none)."""
        if tenant_id is None or all(e.rule.site_ids is None for e in manifest.rules.values()):
            return None
        return await site_links(self.store, self.generation)

    async def stored(self, tenant_id: int | None) -> list[StoredComputer] | None:
        """The tenant's computers as the sync stored them, with their software; None without
        a tenant."""
        if tenant_id is None:
            return None
        return await tenant_computers(self.store, self.generation, tenant_id)


def _tenant_of(
    client_id: int, data: GenerationData, immy: ImmyAccess | None
) -> tuple[tuple[int, str] | None, str | None]:
    """The client's ImmyBot tenant (id, name), or None and why there is no computer list."""
    if immy is None:
        return None, "ImmyBot is not configured: no computer list."
    if not data.manifest.immybot.configured:
        return None, "The last sync did not include ImmyBot yet."
    match = data.matches.get(client_id)
    if match is None or match.tenant_id is None:
        # Said to a technician: why, in words, and who can fix it. The admin API that maps
        # clients (/api/mappings) takes a key technicians do not hold, so it is never named here.
        return None, (
            f"This client has no ImmyBot tenant ({_why_no_tenant(match)}), so its computers "
            "cannot be shown: ask an admin to map this client."
        )
    return (match.tenant_id, match.tenant_name or str(match.tenant_id)), None


def _why_no_tenant(match: TenantMatch | None) -> str:
    if match is None or not match.detail:
        return "no ImmyBot tenant has this client's name"
    # An ambiguous match's stored detail ends with an instruction for admins.
    return match.detail.removesuffix(": map it explicitly")


async def _client_part(
    view: TabView, client_id: int, data: GenerationData, live: _Live, now: datetime
) -> None:
    """The client's record, its tenant's computers live and as stored (and, when a rule is
    site-scoped, where computers are), side by side; then coverage, the numbers per software and
    the computers."""
    email = view.ticket.user_email if view.ticket else ""
    tenant, computers_note = _tenant_of(client_id, data, live.immy)
    tenant_id = tenant[0] if tenant is not None else None
    record, listed, stored, links = await asyncio.gather(
        client_record(live.store, live.generation, client_id),
        live.listed(tenant_id),
        live.stored(tenant_id),
        live.links(data.manifest, tenant_id),
    )
    if record is None:
        view.notices.append(
            "This client is not in the last sync (new, or not visible to the API user)."
        )
        return
    view.client_name = view.client_name or record.client.name
    found = coverage(record, data.items, data.manifest.rules.values(), now.date())
    view.contracts, view.items, view.software = found.contracts, found.items, found.software
    if not view.site_name and len(record.sites) == 1:
        view.site_name = record.sites[0].name
    stale_days = live.immy.stale_days if live.immy is not None else 30
    tenants = None
    if live.immy is not None and data.manifest.immybot.configured:
        tenants = by_tenant(stored or [], data.manifest.synced_at, stale_days)
    inventory = data.manifest.immybot.inventory
    view.numbers = heading_numbers(found.wanted, tenant_id, tenants, inventory, links)
    if tenant is None or listed is None or stored is None or live.immy is None:
        view.computers = Computers(note=computers_note)
        return
    mine = (tenants or {}).get(tenant[0])
    reach = Reach(mine.kinds if mine is not None else {}, stale_days, links)
    view.computers = computers_view(
        tenant_read(listed, stored, tenant[0], email),
        found.wanted,
        inventory,
        reach,
        email=email,
        base_url=live.immy.base_url,
        tenant_name=tenant[1],
    )


def _freshness(view: TabView, state: ServingState, schedule: str, now: datetime) -> None:
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
