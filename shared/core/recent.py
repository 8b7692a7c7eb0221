"""A bounded map of the values used last: the read caches keep their per-client and per-bucket
entries in one, so a long-lived process holds at most a known number of them."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The last `kept` values put, by key, least recently used out first; thread-safe."""

    def __init__(self, kept: int) -> None:
        self._kept = kept
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(whether the key is kept, its value)."""
        with self._lock:
            if key not in self._entries:
                return False, None
            self._entries.move_to_end(key)
            return True, self._entries[key]

    def put(self, key: K, value: V) -> None:
        """Keep a value, dropping the least recently used past the bound."""
        with self._lock:
            self._entries[key] = value
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every value."""
        with self._lock:
            self._entries.clear()
