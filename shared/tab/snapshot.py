"""The tab's Table reads: what serves (pointer, held run, last run) and the generation it reads.

A tab view's Table requests, on its critical path:
1. `SyncState`, one partition query: the pointer and the held generation together.
2. `SyncRuns`, the newest row (beside 1): whether the last run failed.
3. the client's record in the current generation (`shared.store.generations.read_client`).
The generation's manifest, item catalogue and client -> tenant matches are the same for every
view of a generation, so they are read once per process and generation (on the first view of it)
and kept; the manifest (which a rule or mapping edit replaces within a generation) is re-read after
the response once it is `MANIFEST_TTL` seconds old, with the matches when the manifest changed.
The computers come live from ImmyBot, so they cost no Table read unless ImmyBot misses the deadline
(then the snapshot's list stands in). No write is on the critical path (see `shared.tab.page`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

from shared.core.mapping import TenantMatch
from shared.records.halo import Item
from shared.runtime.background import Background
from shared.store.generations import (
    ClientRecord,
    Manifest,
    read_client,
    read_items,
    read_manifest,
    read_matches,
)
from shared.store.repository import Held, Pointer, Store

# How long a cached manifest serves before a view re-reads it (after its response).
MANIFEST_TTL = 5.0
after_response = Background("tab-after")


@dataclass(frozen=True, slots=True)
class ServingState:
    """What serves: the pointer (None before the first sync), a held run, the last run's outcome."""

    pointer: Pointer | None
    held: Held | None
    last_outcome: str | None


@dataclass(frozen=True, slots=True)
class GenerationData:
    """What every view of one generation shares: manifest, items, client -> tenant matches."""

    manifest: Manifest
    version: str
    items: Mapping[int, Item]
    matches: Mapping[int, TenantMatch]
    read_at: float


def _last_outcome(store: Store) -> str | None:
    table = store.table("SyncRuns", create=False)
    try:
        for entity in table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": "run"}, results_per_page=1, select=["outcome"]
        ):
            outcome = entity.get("outcome")
            return str(outcome) if outcome is not None else None
    except ResourceNotFoundError:
        pass
    return None


# (store identity) -> (read at, the store's local write count then, status)
_status: dict[str, tuple[float, int, ServingState]] = {}


async def sync_status(store: Store, clock: Callable[[], float] = time.monotonic) -> ServingState:
    """The pointer, held generation and last run outcome: two requests side by side, kept for
    `MANIFEST_TTL` seconds (a swap, hold or run record made by this process is seen at once; one
    made elsewhere within the TTL, as for the targets API's pointer)."""
    key, writes, now = store.identity, store.local_writes, clock()
    with _lock:
        hit = _status.get(key)
    if hit is not None and hit[1] == writes and hit[0] <= now < hit[0] + MANIFEST_TTL:
        return hit[2]
    (pointer, held), outcome = await asyncio.gather(
        asyncio.to_thread(store.current_and_held), asyncio.to_thread(_last_outcome, store)
    )
    status = ServingState(pointer, held, outcome)
    with _lock:
        _status[key] = (now, writes, status)
    return status


# A generation's client records never change once written: the last few hundred viewed are kept.
CLIENTS_KEPT = 512
_clients: OrderedDict[tuple[str, str, int], ClientRecord | None] = OrderedDict()


async def client_record(store: Store, generation: str, client_id: int) -> ClientRecord | None:
    """One client's records in a generation: one range read, then kept (an LRU of
    `CLIENTS_KEPT`)."""
    key = (store.identity, generation, client_id)
    with _lock:
        if key in _clients:
            _clients.move_to_end(key)
            return _clients[key]
    record = await asyncio.to_thread(read_client, store, generation, client_id)
    with _lock:
        _clients[key] = record
        while len(_clients) > CLIENTS_KEPT:
            _clients.popitem(last=False)
    return record


_cache: dict[tuple[str, str], GenerationData] = {}
_refreshing: set[tuple[str, str]] = set()
_lock = threading.Lock()


def _load(store: Store, generation: str, previous: GenerationData | None) -> GenerationData:
    manifest, version = read_manifest(store, generation)
    items = (
        previous.items if previous is not None else {i.id: i for i in read_items(store, generation)}
    )
    if previous is not None and previous.version == version:
        matches = previous.matches
    elif manifest.immybot.configured:
        matches = read_matches(store, generation)
    else:
        matches = {}
    return GenerationData(manifest, version, items, matches, time.monotonic())


def _refresh(store: Store, generation: str, key: tuple[str, str]) -> None:
    try:
        with _lock:
            previous = _cache.get(key)
        fresh = _load(store, generation, previous)
        with _lock:
            if key in _cache:  # not replaced by a newer generation meanwhile
                _cache[key] = fresh
    finally:
        with _lock:
            _refreshing.discard(key)


async def generation_data(store: Store, generation: str) -> GenerationData:
    """The generation's manifest, items and matches: read on its first view in this process, then
    kept; a manifest older than `MANIFEST_TTL` is re-read after the response, not before it."""
    key = (store.identity, generation)
    with _lock:
        hit = _cache.get(key)
        stale = hit is not None and time.monotonic() - hit.read_at > MANIFEST_TTL
        if stale and key not in _refreshing:
            _refreshing.add(key)
        else:
            stale = False
    if hit is None:
        loaded = await asyncio.to_thread(_load, store, generation, None)
        with _lock:
            _cache.clear()  # one generation at a time is all a tab needs
            _cache[key] = loaded
        return loaded
    if stale:
        after_response.submit("manifest refresh", lambda: _refresh(store, generation, key))
    return hit


def forget() -> None:
    """Drop the cached generation data, status and client records (tests that change a
    generation behind the tab's back)."""
    with _lock:
        _cache.clear()
        _status.clear()
        _clients.clear()
