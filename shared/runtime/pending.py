"""What this process still owes storage: records it could not write yet, kept for the next try."""

from __future__ import annotations

import threading
from typing import Any


class Pending:
    """A thread-safe list of things waiting to be written, in arrival order."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def add(self, item: Any) -> None:
        """Keep `item` until it is written."""
        with self._lock:
            self._items.append(item)

    def snapshot(self) -> list[Any]:
        """The items waiting now (a copy)."""
        with self._lock:
            return list(self._items)

    def remove(self, item: Any) -> None:
        """`item` was written: forget it."""
        with self._lock:
            self._items.remove(item)


# Sync run records storage refused (shared.sync.runs writes them on the next run here).
unrecorded_runs = Pending()
