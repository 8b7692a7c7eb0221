"""The `halo_events` queue function's work: look at the clients HaloPSA's events named, again.

For each message (one client, or a contract or invoice to resolve to its client):
1. Coalesce: a message received before the last read of its client is already answered.
2. Register it as pending (the receiver did already, after its answer), take the sync lease (the
   same one-writer lease as the sync), and drain what is pending (up to DRAIN_LIMIT keys, this
   one among them): each client is read again through REST (shared.halo.client_read; a
   contract or invoice is first asked whose it is), and one generation in which only those
   clients changed is published, under the sync's guard, from their part of the current
   generation (shared.sync.event_patch).
   Between two syncs refreshes spend at most what a full REST sync of the data costs in HaloPSA
   requests (never less than one whole drain): past that, keys stay pending for the next sync,
   which answers them (shared.sync.run), so a storm of events costs no more than a sync.
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

from shared.core.events import (
    CLIENT_REQUESTS,
    TOKEN_REQUESTS,
    EventMessage,
    full_sync_requests,
    keys_within,
)
from shared.core.generation import ClientRecord
from shared.halo.client import HaloClient
from shared.halo.client_read import ClientRead, client_of, read_client
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
    add_spend,
    drop_pending,
    keep_last,
    mark_refreshed,
    pending_keys,
    read_stats,
    refreshed_at,
    spent,
    update_stats,
)
from shared.store.generations import read_manifest
from shared.store.repository import Store
from shared.store.state import Pointer
from shared.sync.event_patch import publish_clients
from shared.sync.event_publish import Fresh, Published
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
# What refreshes may spend between two syncs is what a full REST sync of the data costs, but never
# less than one whole drain: under about 1,000 clients a full sync costs fewer requests than that.
MIN_ROOM = TOKEN_REQUESTS + CLIENT_REQUESTS * DRAIN_LIMIT
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
        if await _deferred(settings, store, message.key):
            return QueueAnswer()
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


async def _deferred(settings: Settings, store: Store, key: str) -> bool:
    """Whether refreshes have spent what they may until the next sync, so the key waits for it
    (pending) without taking the lease: a storm's later messages cost a few reads each."""
    pointer = await asyncio.to_thread(store.current)
    if pointer is None:
        return False
    window = pointer.synced_at.isoformat()
    room = await asyncio.to_thread(_room, settings, store, pointer, window)
    if keys_within([key], room):
        return False
    await asyncio.to_thread(update_stats, store, REFRESH, lambda d: add_counts(d, {"deferred": 1}))
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


@dataclass(frozen=True, slots=True)
class Reads:
    """What a refresh read from HaloPSA: each client, the requests it took, the clients it
    read and the keys naming a record HaloPSA does not know."""

    reads: list[ClientRead]
    requests: int
    clients: list[int]
    unresolved: list[str]


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
    summary: dict[str, Any] = {"run_id": owner, "at": clock().isoformat(), "keys": len(pending)}
    pointer = await asyncio.to_thread(store.current)
    if pointer is None:
        summary |= {"outcome": "skipped", "note": "no snapshot yet: the first sync reads all"}
        return await _done(store, summary, pending, clock(), mark)
    window = pointer.synced_at.isoformat()
    room = await asyncio.to_thread(_room, settings, store, pointer, window)
    taken = set(keys_within([p.key for p in pending], room))
    if not taken:
        # Refreshes have spent what a full sync costs since the data's sync: the next sync
        # reads these clients (and answers what is pending); the keys stay pending until then.
        summary |= {"outcome": "deferred", "keys": 0, "pending": len(pending),
                    "note": f"HaloPSA requests left for events until the next sync: {room}"}  # fmt: skip
        return await _done(store, summary, [], clock(), mark)
    pending = [p for p in pending if p.key in taken]
    summary["keys"] = len(pending)
    read_at = clock()
    found = await _read(settings, clients, [p.key for p in pending])
    summary |= {"clients": found.clients[:20], "unresolved": len(found.unresolved),
                "halo_requests": found.requests,
                "unknown_to_halo": [r.client_id for r in found.reads if r.client is None][:20],
                "phases": {"read": round(time.perf_counter() - mark, 3)}}  # fmt: skip

    # Renewed right before the publish, so the swap that follows is covered by a whole TTL.
    if not await lease.still_held():
        raise LeaseBusy(f"this refresh lost the sync lease ({lease.lost}); not swapping")

    def before_swap(_generation: str) -> None:
        if lease.lost:
            raise LeaseBusy("this refresh lost the sync lease to another run; not swapping")

    published = await asyncio.to_thread(
        publish_clients, settings, store, pointer, fresh_of(found.reads),
        run_id=owner, now=clock(), before_swap=before_swap,
    )  # fmt: skip
    summary["phases"]["publish"] = round(time.perf_counter() - mark, 3)
    summary |= _published(published)
    if published.outcome == "published" and settings.immybot is not None:
        summary["immy_tags"] = await _follow_tags(settings, store, clients, published, clock())
        summary["phases"]["tags"] = round(time.perf_counter() - mark, 3)
    return await _done(store, summary, pending, read_at, mark, (window, found.requests))


def _room(settings: Settings, store: Store, pointer: Pointer, window: str) -> int:
    """The HaloPSA requests refreshes may still make until the next sync: what a full REST sync
    of the current data costs, less what refreshes spent since that data was synced."""
    manifest, _ = read_manifest(store, pointer.generation)
    limit = max(MIN_ROOM, full_sync_requests(manifest.read, settings.halo_page_size))
    return limit - spent(read_stats(store, REFRESH), window)


async def _read(settings: Settings, clients: EventClients, keys: list[str]) -> Reads:
    """Each client the keys name read from HaloPSA (a contract or invoice first asked whose it
    is), side by side within the request budget."""
    halo = clients.halo or HaloClient.from_settings(settings)
    try:
        before = halo.stats.total_requests
        wanted = {int(k.partition("|")[2]) for k in keys if k.startswith("client|")}
        records = [(k, *k.split("|")) for k in keys if not k.startswith("client|")]
        owners = await gather_or_cancel(*(client_of(halo, t, int(i)) for _, t, i in records))
        wanted |= {o for o in owners if o is not None}
        unresolved = [key for (key, _, _), o in zip(records, owners, strict=True) if o is None]
        reads = list(await gather_or_cancel(*(read_client(halo, c) for c in sorted(wanted))))
        return Reads(reads, halo.stats.total_requests - before, sorted(wanted), unresolved)
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
        return await apply_immy_tags(
            settings, store, immy, published.generation, now, scope=scope,
            targets=published.resolved,
        )  # fmt: skip
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
    for name in ("targets", "guard", "rejected", "note", "warnings", "built"):
        value = getattr(published, name)
        if value:
            out[name] = value
    return out


async def _done(
    store: Store,
    summary: dict[str, Any],
    pending: list[PendingKey],
    read_at: datetime,
    mark: float,
    spend: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """Mark the keys read, drop them from pending, record (with what HaloPSA requests it spent)
    and log the refresh."""
    await asyncio.to_thread(mark_refreshed, store, [p.key for p in pending], read_at)
    await asyncio.to_thread(drop_pending, store, pending)
    summary["seconds"] = round(time.perf_counter() - mark, 3)

    def change(document: dict[str, Any]) -> None:
        add_counts(document, {"refreshes": 1, str(summary["outcome"]): 1})
        keep_last(document, "last", summary, LAST_REFRESHES)
        if spend is not None:
            add_spend(document, *spend)

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
