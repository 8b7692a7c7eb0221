"""The tab's Table reads: what serves (pointer, held run, last run) and the generation it reads.

A tab view's Table requests, on its critical path:
1. `SyncState`, one partition query: the pointer and the held generation together.
2. `SyncRuns`, the newest row (beside 1): whether the last run failed.
3. the client's record in the current generation (`shared.generation.read_client`).
The generation's manifest, item catalogue and client -> tenant matches are the same for every
view of a generation, so they are read once per process and generation (on the first view of it)
and kept; the manifest (which a rule or mapping edit replaces within a generation) is re-read after
the response once it is `MANIFEST_TTL` seconds old, with the matches when the manifest changed.
The computers come live from ImmyBot, so they cost no Table read unless ImmyBot misses the deadline
(then the snapshot's list stands in). No write is on the critical path (see `shared.tab`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from azure.core.exceptions import ResourceNotFoundError

from shared.background import Background
from shared.generation import Manifest, read_items, read_manifest, read_matches
from shared.halo_models import Item
from shared.mapping import TenantMatch
from shared.store import Held, Pointer, Store

# How long a cached manifest serves before a view re-reads it (after its response).
MANIFEST_TTL = 5.0
after_response = Background("tab-after")


@dataclass(frozen=True, slots=True)
class SyncStatus:
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


async def sync_status(store: Store) -> SyncStatus:
    """The pointer, held generation and last run outcome: two requests, side by side."""
    (pointer, held), outcome = await asyncio.gather(
        asyncio.to_thread(store.current_and_held), asyncio.to_thread(_last_outcome, store)
    )
    return SyncStatus(pointer, held, outcome)


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
    """Drop the cached generation data (tests that change a generation behind the tab's back)."""
    with _lock:
        _cache.clear()
