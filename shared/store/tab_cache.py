"""The tab's caches of generation records: client records and tenants' stored computers.

A generation's records never change once written, so what a view read can be kept for as long as
the generation serves. `RecordsKept` keeps the last few hundred records read (an LRU).
`ComputerIndex` keeps one generation's whole stored computer list as the JSON texts the sync
wrote, per ImmyBot tenant: loaded once in the background (one partition read), it spares every
later view of any client the range read of its tenant's computers. It holds raw text (about half
a kilobyte per computer) and parses only the tenant a view shows.

The instances live in `shared.store.read_cache`, with the rest of the read side's state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Generic, TypeVar

# A generation's records never change once written: the last few hundred viewed are kept.
CLIENTS_KEPT = 512
# (store identity, generation, client id) or (store identity, generation, ImmyBot tenant id)
RecordKey = tuple[str, str, int]
GenerationKey = tuple[str, str]  # (store identity, generation)
V = TypeVar("V")


class RecordsKept(Generic[V]):
    """The last `CLIENTS_KEPT` records read per generation and id (a record may be None: not in
    that generation), LRU."""

    def __init__(self, kept: int = CLIENTS_KEPT) -> None:
        self._kept = kept
        self._entries: OrderedDict[RecordKey, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: RecordKey) -> tuple[bool, V | None]:
        """(whether the key is kept, its record)."""
        with self._lock:
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key]

    def put(self, key: RecordKey, record: V) -> None:
        """Keep a record, dropping the least recently used past the bound."""
        with self._lock:
            self._entries[key] = record
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every record."""
        with self._lock:
            self._entries.clear()


TenantTexts = Mapping[int, Sequence[str]]  # tenant id -> JSON arrays of its stored computers


class ComputerIndex:
    """One generation's stored computers per tenant (JSON texts), or a claim to load them: the
    first caller for a generation is told to load (once), the others use what is there."""

    def __init__(self) -> None:
        self._key: GenerationKey | None = None
        self._texts: TenantTexts | None = None
        self._loading: GenerationKey | None = None
        self._lock = threading.Lock()

    def get(self, key: GenerationKey) -> tuple[TenantTexts | None, bool]:
        """(the generation's texts if loaded, whether this caller should load them)."""
        with self._lock:
            if self._key == key and self._texts is not None:
                return self._texts, False
            if self._loading == key:
                return None, False
            self._loading = key
            return None, True

    def put(self, key: GenerationKey, texts: TenantTexts | None) -> None:
        """End a claimed load: keep `texts` (None: the load failed, a later view claims again)
        in place of any older generation's."""
        with self._lock:
            if self._loading == key:
                self._loading = None
            if texts is not None:
                self._key, self._texts = key, texts

    def clear(self) -> None:
        """Forget the generation kept and any claim."""
        with self._lock:
            self._key = self._texts = self._loading = None
