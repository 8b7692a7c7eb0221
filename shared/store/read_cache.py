"""The current generation as the read side sees it: the pointer and its manifest, cached briefly.

Every API answer starts with "which generation, and what does its manifest say": two Table round
trips and a manifest validation per call without a cache. Both change rarely (a sync every 15
minutes, a rule edit now and then), so an instance keeps them for `TTL_SECONDS`:
- a swap or a rule edit made by another instance is seen within `TTL_SECONDS`;
- one made by this process is seen at once (`TableStore.local_writes` moves);
- after the TTL the pointer and manifest are read again, but the manifest is validated again only
  when its ETag changed.

The sync itself never reads through this cache: its swap is conditioned on the pointer it read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.store.generations import MANIFEST, META, Manifest
from shared.store.repository import Pointer, Store

# Long enough that 20 concurrent callers share one read, short against the sync interval.
TTL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Current:
    """The current pointer, its generation's manifest, and the manifest's ETag (version token)."""

    pointer: Pointer
    manifest: Manifest
    manifest_etag: str


@dataclass(frozen=True, slots=True)
class _Entry:
    current: Current
    read_at: float
    local_writes: int


class CurrentCache:
    """Per store identity, the last `Current` read; thread-safe. `clock` is for tests."""

    def __init__(
        self, ttl_seconds: float = TTL_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        # One refresh per store at a time: callers arriving meanwhile wait for its result
        # rather than all reading the same two entities.
        self._refreshing: dict[str, threading.Lock] = {}

    def read(self, store: Store) -> Current | None:
        """The current generation and manifest, or None before the first sync."""
        identity = store.identity
        hit = self._fresh(identity, store.local_writes)
        if hit is not None:
            return hit
        with self._lock:
            refreshing = self._refreshing.setdefault(identity, threading.Lock())
        with refreshing:
            hit = self._fresh(identity, store.local_writes)
            if hit is not None:
                return hit
            return self._refresh(store, identity)

    def forget(self, identity: str) -> None:
        """Forget one store's entry: the next read goes to storage."""
        with self._lock:
            self._entries.pop(identity, None)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def _fresh(self, identity: str, local_writes: int) -> Current | None:
        with self._lock:
            entry = self._entries.get(identity)
        if entry is None or entry.local_writes != local_writes:
            return None
        # The age counts from before the read began, so nothing is served past the TTL.
        if not entry.read_at <= self._clock() < entry.read_at + self._ttl:
            return None
        return entry.current

    def _refresh(self, store: Store, identity: str) -> Current | None:
        # Taken before reading: a write landing during the read leaves the entry stale at once.
        local_writes = store.local_writes
        read_at = self._clock()
        pointer = store.current()
        if pointer is None:
            with self._lock:
                self._entries.pop(identity, None)
            return None
        document, etag = store.read_document(pointer.generation, META, MANIFEST)
        with self._lock:
            previous = self._entries.get(identity)
        if (
            previous is not None
            and previous.current.pointer.generation == pointer.generation
            and previous.current.manifest_etag == etag
        ):
            manifest = previous.current.manifest
        else:
            manifest = Manifest.model_validate(document)
        current = Current(pointer, manifest, etag)
        with self._lock:
            self._entries[identity] = _Entry(current, read_at, local_writes)
        return current
