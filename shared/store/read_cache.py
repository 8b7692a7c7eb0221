"""The read side's one cache: the pointer and manifest, the sync status, client records, tenants'
stored computers (`shared.store.tab_cache`), the tab's generation data, whole answers and the
tab's ticket memo; each per store identity.

Every API answer starts with "which generation, and what does its manifest say": two Table round
trips and a manifest validation per call without a cache. Both change rarely (a sync every 15
minutes, a rule edit now and then), so an instance keeps them for `TTL_SECONDS`:
- a swap or a rule edit made by another instance is seen within `TTL_SECONDS`;
- one made by this process is seen at once (`TableStore.local_writes` moves);
- after the TTL the pointer and manifest are read again, but the manifest is validated again only
  when its ETag changed.

The sync itself never reads through this cache: its swap is conditioned on the pointer it read.
The instances the API and the tab share are at the end of this module: the process's only cache
state outside `shared.runtime`.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from shared.core.generation import MANIFEST, META, ClientRecord, Manifest
from shared.core.installed import StoredComputer
from shared.core.mapping import TenantMatch
from shared.core.recent import Recent
from shared.core.site_links import SiteLink
from shared.core.targets import Snapshot
from shared.records.halo import Item
from shared.store.tab_cache import OwnerIndex, RememberedTickets

if TYPE_CHECKING:  # at run time the store imports this module (`writes_here`), not the reverse
    from shared.store.repository import Store
    from shared.store.sharing import Index
    from shared.store.state import Held, Pointer

K = TypeVar("K", bound=Hashable)
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


# -- this process's writes -----------------------------------------------------------------------


class LocalWrites:
    """Per store identity, how many changes this process made to what read caches hold (the
    pointer, documents): an entry taken at another count may be stale, so a cache drops what this
    process changed itself at once; other instances' writes are seen when the TTL runs out."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def note(self, identity: str) -> None:
        """Count one change."""
        with self._lock:
            self._counts[identity] = self._counts.get(identity, 0) + 1

    def count(self, identity: str) -> int:
        """How many changes this process made to the store with this identity."""
        return self._counts.get(identity, 0)


# -- the sync status -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServingState:
    """What serves: the pointer (None before the first sync), a held run, the last run's outcome."""

    pointer: Pointer | None
    held: Held | None
    last_outcome: str | None


class StatusCache:
    """Per store identity, the last `ServingState` read, served for `ttl` seconds while the store's
    local write count stands (a swap, hold or run record made by this process is seen at once)."""

    def __init__(self, ttl_seconds: float = TTL_SECONDS) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[str, tuple[float, int, ServingState]] = {}
        self._lock = threading.Lock()

    def get(self, identity: str, local_writes: int, now: float) -> ServingState | None:
        """The kept status if still fresh at `now`, else None."""
        with self._lock:
            hit = self._entries.get(identity)
        if hit is not None and hit[1] == local_writes and hit[0] <= now < hit[0] + self.ttl:
            return hit[2]
        return None

    def put(self, identity: str, local_writes: int, read_at: float, status: ServingState) -> None:
        """Keep a status read at `read_at` (when the store's local write count was `local_writes`)."""
        with self._lock:
            self._entries[identity] = (read_at, local_writes, status)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


# -- client records and index buckets -------------------------------------------------------------

# A generation's client records never change once written: the last few hundred viewed are kept.
CLIENTS_KEPT = 512
ClientKey = tuple[str, str, int]  # (store identity, generation, client id)
# Nor does a generation's index of shared rows (shared.store.sharing): a bucket is 1000 owners.
INDEX_BUCKETS_KEPT = 256
IndexKey = tuple[str, str, str, int]  # (store identity, generation, partition, bucket)
# A tenant's stored computers, until the generation's computer index is loaded.
TenantKey = tuple[str, str, int]  # (store identity, generation, ImmyBot tenant id)
# A generation's computer-to-site links as the tab read them: (monotonic time read, the asset
# run that wrote them or None, the links by computer id or None). Kept per generation.
KeptLinks = tuple[float, str | None, Mapping[int, SiteLink] | None]

# -- the tab's generation data ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GenerationData:
    """What every view of one generation shares: manifest, items, client -> tenant matches."""

    manifest: Manifest
    version: str
    items: Mapping[int, Item]
    matches: Mapping[int, TenantMatch]
    read_at: float


GenerationKey = tuple[str, str]  # (store identity, generation)


class GenerationCache:
    """One generation's `GenerationData` at a time; one older than `ttl` seconds is handed out
    with a claim to refresh it, to one caller at a time."""

    def __init__(self, ttl_seconds: float = TTL_SECONDS) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[GenerationKey, GenerationData] = {}
        self._refreshing: set[GenerationKey] = set()
        self._lock = threading.Lock()

    def get(self, key: GenerationKey, now: float) -> tuple[GenerationData | None, bool]:
        """(the kept data or None, whether this caller should refresh it)."""
        with self._lock:
            hit = self._entries.get(key)
            stale = hit is not None and now - hit.read_at > self.ttl
            if stale and key not in self._refreshing:
                self._refreshing.add(key)
                return hit, True
            return hit, False

    def previous(self, key: GenerationKey) -> GenerationData | None:
        """The kept data, fresh or not."""
        with self._lock:
            return self._entries.get(key)

    def replace(self, key: GenerationKey, data: GenerationData) -> None:
        """Keep a first read of a generation in place of any other (one at a time is all a tab
        needs)."""
        with self._lock:
            self._entries.clear()
            self._entries[key] = data

    def refreshed(self, key: GenerationKey, data: GenerationData | None) -> None:
        """End a claimed refresh: keep `data` unless a newer generation replaced the key."""
        with self._lock:
            if data is not None and key in self._entries:
                self._entries[key] = data
            self._refreshing.discard(key)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()


# -- whole answers ---------------------------------------------------------------------------------

# A 1,800-target answer is about 720 KiB: this keeps some 90 of them.
MAX_BYTES = 64 * 1024 * 1024


class AnswerCache(Generic[K]):
    """Answers as bytes by key, least recently used first out, bounded by their total size, so a
    repeated large answer is neither re-read nor re-serialised.

    Thread-safe. Nothing expires: the key must name everything the answer depends on (for
    targets: `shared.api.targets.answer_targets`), so a change gives a new key and the old entry just
    goes out of use.
    """

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self._entries: OrderedDict[K, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: K) -> bytes | None:
        """The cached answer, or None."""
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None:
                self._entries.move_to_end(key)
            return hit

    def put(self, key: K, body: bytes) -> None:
        """Keep an answer, dropping the least recently used ones past the size bound."""
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = body
            self._bytes += len(body)
            while self._bytes > self._max and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Forget everything (benchmarks measure the cold path with it)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


# -- the process's instances -----------------------------------------------------------------------


class SnapshotCache:
    """The one whole snapshot the API keeps in memory, keyed by store, generation and manifest
    ETag (a mapping or rule change rewrites the manifest, so every instance notices)."""

    def __init__(self) -> None:
        self._key: tuple[str, str, str] | None = None
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> Snapshot | None:
        """The snapshot kept under `key`, or None."""
        with self._lock:
            return self._snapshot if self._key == key else None

    def put(self, key: tuple[str, str, str], snapshot: Snapshot) -> None:
        """Keep `snapshot` (and only it) under `key`."""
        with self._lock:
            self._key, self._snapshot = key, snapshot

    def clear(self) -> None:
        """Keep nothing."""
        with self._lock:
            self._key, self._snapshot = None, None


# The process's read-side caches: the only module-level mutable state outside shared/runtime.
current = CurrentCache()
snapshots = SnapshotCache()
answers: AnswerCache[Hashable] = AnswerCache()
writes_here = LocalWrites()
statuses = StatusCache()
client_records: Recent[ClientKey, ClientRecord | None] = Recent(CLIENTS_KEPT)
# Index buckets as read (None: the generation has no index, its own table holds everything).
index_buckets: Recent[IndexKey, Index | None] = Recent(INDEX_BUCKETS_KEPT)
tenant_computers: Recent[TenantKey, list[StoredComputer]] = Recent(CLIENTS_KEPT)
client_index = OwnerIndex()
computer_index = OwnerIndex()
site_links: Recent[GenerationKey, KeptLinks] = Recent(4)
generations = GenerationCache()
remembered_tickets = RememberedTickets()


def forget_tab() -> None:
    """Drop the tab's generation data, statuses, client records and tenant computers (tests
    that change a generation behind the tab's back)."""
    generations.clear()
    statuses.clear()
    client_records.clear()
    index_buckets.clear()
    tenant_computers.clear()
    client_index.clear()
    computer_index.clear()
    site_links.clear()
