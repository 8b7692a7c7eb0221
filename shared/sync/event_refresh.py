"""The `halo_events` queue function's work: look at the clients HaloPSA's events named, again.

For each message (one client, or a contract or invoice to resolve to its client):
1. Coalesce: a message received before the last read of its client is already answered.
2. Register it as pending, take the sync lease (the same one-writer lease as the sync), and drain
   what is pending (up to DRAIN_LIMIT keys, this one among them): each client is read again
   through REST (shared.halo.client_read), and one generation in which only those clients
   changed is published, under the sync's guard (shared.sync.event_publish).
3. With the generation current, the rules covering the changed clients converge their ImmyBot
   tags for those clients' tenants (shared.sync.tags, scoped).

A failure (the lease busy with a sync, HaloPSA or storage failing) fails the invocation, so the
host delivers the message again (host.json: a minute apart, 5 times); the last attempt that
fails puts the message on the poison queue with the reason, and counts it for the status. A
refresh that dies mid-way changes nothing that serves (the swap is its last step) and keeps the
lease until it goes stale, as a sync does. The timer sync stays the source of truth.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from shared.core.events import EventMessage
from shared.core.generation import ClientRecord
from shared.core.targets import Snapshot
from shared.halo.client import HaloClient
from shared.halo.client_read import ClientRead, read_client
from shared.halo.paging import gather_or_cancel
from shared.immybot.client import ImmyClient
from shared.runtime.clients import immy_applications
from shared.runtime.process import get_settings, get_store
from shared.settings import Settings
from shared.store.event_state import (
    REFRESH,
    PendingKey,
    add_counts,
    add_pending,
    drop_pending,
    keep_last,
    mark_refreshed,
    pending_keys,
    refreshed_at,
    update_stats,
)
from shared.store.repository import Store
from shared.sync.event_publish import Base, Fresh, Published, publish_clients
from shared.sync.lease import (
    EVENT_OWNER_PREFIX,
    WriterLease,
    brief,
    record_abandoned,
)
from shared.sync.runs import SyncReport
from shared.sync.tags import apply_immy_tags

log = logging.getLogger("halo_immy.events")

# host.json `extensions.queues.maxDequeueCount` (tests/test_app.py keeps them equal): the
# attempt that gives up and says why.
MAX_DEQUEUE = 5
# Keys one refresh drains: a burst of events becomes a few refreshes, each at most this many
# clients (four HaloPSA requests each, inside the request budget).
DRAIN_LIMIT = 20
LAST_REFRESHES, LAST_POISON = 10, 10

Clock = Callable[[], datetime]


class LeaseBusy(RuntimeError):
    """Another run (a sync, or another refresh) holds the sync lease: try again later."""


@dataclass(frozen=True, slots=True)
class QueueAnswer:
    """What the queue function does: nothing more, fail (`retry`), or give up (`poison`)."""

    retry: str | None = None
    poison: str | None = None


@dataclass(slots=True)
class EventClients:
    """The vendor clients of one refresh, owned (closed at its end) or given (tests)."""

    halo: HaloClient | None = None
    immy: ImmyClient | None = None


async def handle_event_message(
    body: bytes,
    dequeue_count: int,
    *,
    settings: Settings | None = None,
    store: Store | None = None,
    clients: EventClients | None = None,
    clock: Clock | None = None,
) -> QueueAnswer:
    """Answer one queue message; never raises for what a retry may cure (it says `retry`)."""
    clock = clock or (lambda: datetime.now(UTC))
    try:
        message = EventMessage.model_validate_json(body)
    except (ValidationError, ValueError) as error:
        # A retry cannot mend it: straight to the poison queue, with why.
        why = error.error_count() if isinstance(error, ValidationError) else 1
        return await _give_up(store, body, f"malformed message ({why} errors)", None, clock(), 1)
    try:
        settings = settings or get_settings()
        store = store or get_store()
        if await _answered(store, message):
            return QueueAnswer()
        await asyncio.to_thread(add_pending, store, message.key, message.received_at)
        await refresh(settings, store, clients or EventClients(), clock)
    except Exception as error:
        reason = brief(error)
        if not isinstance(error, LeaseBusy):
            log.warning("event refresh of %s failed: %s", message.key, reason)
        if dequeue_count >= MAX_DEQUEUE:
            return await _give_up(store, body, reason, message.key, clock(), dequeue_count)
        return QueueAnswer(retry=reason)
    return QueueAnswer()


async def _answered(store: Store, message: EventMessage) -> bool:
    """Whether a refresh read the message's key after it was received (then it is coalesced)."""
    read_at = await asyncio.to_thread(refreshed_at, store, message.key)
    if read_at is None or read_at < message.received_at:
        return False
    await asyncio.to_thread(update_stats, store, REFRESH, lambda d: add_counts(d, {"coalesced": 1}))
    return True


async def refresh(
    settings: Settings, store: Store, clients: EventClients, clock: Clock
) -> dict[str, Any]:
    """Take the sync lease and drain what is pending; LeaseBusy when another run holds it.

    The lease is released when the refresh ends, also by an error; a refresh that dies (killed,
    cancelled) keeps it until it goes stale, and the next run takes it over.
    """
    owner = f"{EVENT_OWNER_PREFIX}{uuid.uuid4().hex[:12]}"
    started = clock()
    lease = WriterLease(store, owner, purpose="refresh", clock=clock)
    grant = await lease.take(started)
    if not grant:
        holder = grant.holder.owner if grant.holder else "another run"
        raise LeaseBusy(f"the sync lease is held by {holder}; the message is tried again")
    if grant.replaced is not None:
        await record_abandoned(store, grant.replaced, SyncReport(run_id=owner, started_at=started))
    try:
        async with lease.heartbeat():
            summary = await _drain(settings, store, clients, clock, owner, lease)
    except Exception:
        await lease.release()
        raise
    await lease.release()
    return summary


async def _drain(
    settings: Settings,
    store: Store,
    clients: EventClients,
    clock: Clock,
    owner: str,
    lease: WriterLease,
) -> dict[str, Any]:
    mark = time.perf_counter()
    pending = await asyncio.to_thread(pending_keys, store, DRAIN_LIMIT)
    keys = [p.key for p in pending]
    summary: dict[str, Any] = {"run_id": owner, "at": clock().isoformat(), "keys": len(keys)}
    pointer = await asyncio.to_thread(store.current)
    if pointer is None:
        summary |= {"outcome": "skipped", "note": "no snapshot yet: the first sync reads all"}
        return await _done(store, summary, pending, clock(), mark)
    base = await asyncio.to_thread(Base.read, store, pointer)
    wanted, unresolved = resolve_keys(base.snapshot, keys)
    summary |= {"clients": sorted(wanted)[:20], "unresolved": len(unresolved)}
    read_at = clock()
    reads, requests = await _read(settings, clients, sorted(wanted))
    fresh = fresh_of(reads)
    unknown = [r.client_id for r in reads if r.client is None]
    summary |= {"halo_requests": requests, "unknown_to_halo": unknown[:20]}

    # Renewed right before the publish, so the swap that follows is covered by a whole TTL.
    if not await lease.still_held():
        raise LeaseBusy(f"this refresh lost the sync lease ({lease.lost}); not swapping")

    def before_swap(_generation: str) -> None:
        if lease.lost:
            raise LeaseBusy("this refresh lost the sync lease to another run; not swapping")

    published = await asyncio.to_thread(
        publish_clients, settings, store, base, fresh,
        run_id=owner, now=clock(), before_swap=before_swap,
    )  # fmt: skip
    summary |= _published(published)
    if published.outcome == "published" and settings.immybot is not None:
        summary["immy_tags"] = await _follow_tags(settings, store, clients, published, clock())
    return await _done(store, summary, pending, read_at, mark)


def resolve_keys(snapshot: Snapshot, keys: list[str]) -> tuple[set[int], list[str]]:
    """The clients the keys name: a client's own, or the client of a contract or recurring
    invoice in the current snapshot; and the keys naming records it does not hold."""
    contracts = {c.id: c.client_id for c in snapshot.contracts}
    invoices = {i.id: i.client_id for i in snapshot.invoices}
    clients: set[int] = set()
    unresolved: list[str] = []
    for key in keys:
        target, _, raw = key.partition("|")
        record_id = int(raw)
        found = {"client": record_id, "contract": contracts.get(record_id),
                 "invoice": invoices.get(record_id)}.get(target)  # fmt: skip
        if found is None:
            unresolved.append(key)
        else:
            clients.add(found)
    return clients, unresolved


async def _read(
    settings: Settings, clients: EventClients, wanted: list[int]
) -> tuple[list[ClientRead], int]:
    """Each client read from HaloPSA, side by side within the request budget."""
    halo = clients.halo or HaloClient.from_settings(settings)
    try:
        before = halo.stats.total_requests
        reads = list(await gather_or_cancel(*(read_client(halo, c) for c in wanted)))
        return reads, halo.stats.total_requests - before
    finally:
        if clients.halo is None:
            await halo.aclose()


async def _follow_tags(
    settings: Settings, store: Store, clients: EventClients, published: Published, now: datetime
) -> dict[str, Any]:
    """The changed clients' tenants' ImmyBot tags made (or planned) as the rules now say; never
    raises (the generation serves: a failure is for the next run)."""
    if not published.tenants or published.generation is None:
        return {"skipped": "the changed clients map to no ImmyBot tenant"}
    immy = clients.immy or ImmyClient.from_settings(settings, applications=immy_applications())
    if immy is None:
        return {"skipped": "ImmyBot is not configured"}
    try:
        scope = frozenset(published.tenants)
        return await apply_immy_tags(settings, store, immy, published.generation, now, scope=scope)
    finally:
        if clients.immy is None:
            await immy.aclose()


def fresh_of(reads: list[ClientRead]) -> Fresh:
    """The records of the clients HaloPSA knows (an unknown one is left as the snapshot has it:
    only the timer sync removes a client), their rejects and counts."""
    records: list[ClientRecord] = []
    read: dict[str, int] = {}
    for found in reads:
        if found.client is None:
            continue
        records.append(ClientRecord(found.client, found.sites, found.contracts, found.invoices))
        for kind, count in found.read.items():
            read[kind] = read.get(kind, 0) + count
    return Fresh(records, [reject for r in reads for reject in r.rejects], read)


def _published(published: Published) -> dict[str, Any]:
    out: dict[str, Any] = {"outcome": published.outcome, "changed": published.changed}
    if published.generation and published.outcome != "unchanged":
        out["generation"] = published.generation
    for name in ("targets", "guard", "rejected", "note", "warnings"):
        value = getattr(published, name)
        if value:
            out[name] = value
    return out


async def _done(
    store: Store, summary: dict[str, Any], pending: list[PendingKey], read_at: datetime, mark: float
) -> dict[str, Any]:
    """Mark the keys read, drop them from pending, record and log the refresh."""
    await asyncio.to_thread(mark_refreshed, store, [p.key for p in pending], read_at)
    await asyncio.to_thread(drop_pending, store, pending)
    summary["seconds"] = round(time.perf_counter() - mark, 3)

    def change(document: dict[str, Any]) -> None:
        add_counts(document, {"refreshes": 1, str(summary["outcome"]): 1})
        keep_last(document, "last", summary, LAST_REFRESHES)

    try:
        await asyncio.to_thread(update_stats, store, REFRESH, change)
    except Exception as error:  # what serves is decided; only its record is missing
        log.warning("event refresh %s not recorded: %s", summary["run_id"], brief(error))
    log.info(json.dumps({"event": "event_refresh", **summary}, default=str, sort_keys=True))
    return summary


async def _give_up(
    store: Store | None, body: bytes, reason: str, key: str | None, at: datetime, attempts: int
) -> QueueAnswer:
    """The poison queue's message (the reason and the message as it came) and its count."""
    entry = {"at": at.isoformat(), "key": key, "reason": reason[:500], "attempts": attempts}
    log.warning(json.dumps({"event": "event_poison", **entry}, sort_keys=True))

    def change(document: dict[str, Any]) -> None:
        add_counts(document, {"poison": 1})
        keep_last(document, "poison", entry, LAST_POISON)

    try:
        await asyncio.to_thread(update_stats, store or get_store(), REFRESH, change)
    except Exception as error:  # the poison queue still says why
        log.warning("poison message not counted: %s", brief(error))
    text = body.decode("utf-8", "replace")[:4000]
    return QueueAnswer(poison=json.dumps({**entry, "message": text}))
