"""Work done after a response: a writer thread that outlives the request and its event loop.

The tab's memo of which client a ticket belongs to, and the refresh of its cached manifest, are
not needed to answer the view that triggers them, so they run here instead of on its critical
path. A thread rather than an asyncio task: `asyncio.run` (tests, scripts) cancels the tasks left
when its coroutine returns, and a cancelled write would be lost. Failures are logged and counted,
never silent; the interpreter waits for queued work at exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all

log = logging.getLogger("halo_immy.background")


class Background:
    """One worker thread; `submit` queues, `wait` blocks until everything queued has run."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()
        self.failures = 0

    def submit(self, what: str, work: Callable[[], None]) -> Future[None]:
        """Run `work` after the caller moves on; `what` names it in the log (no secrets)."""

        def run() -> None:
            try:
                work()
            except Exception as error:  # counted and logged below: never lost silently
                with self._lock:
                    self.failures += 1
                log.warning("after the response: %s failed: %s", what, type(error).__name__)

        future = self._executor.submit(run)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)
        return future

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the work queued so far has finished (tests; an orderly shutdown)."""
        with self._lock:
            pending = set(self._pending)
        wait_all(pending, timeout=timeout)


# The tab's after-response work (ticket memos, manifest refreshes): one thread per process.
after_response = Background("tab-after")
# The HaloPSA webhook's counts of what a delivery held: one thread per process.
after_events = Background("events-after")
