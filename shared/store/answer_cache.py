"""A bounded cache of whole answers as bytes, so a repeated large answer is neither re-read nor
re-serialised."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
# A 1,800-target answer is about 720 KiB: this keeps some 90 of them.
MAX_BYTES = 64 * 1024 * 1024


class AnswerCache(Generic[K]):
    """Answers as bytes by key, least recently used first out, bounded by their total size.

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
