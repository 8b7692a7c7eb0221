"""How the Functions Python worker runs invocations, for the devhost: async handlers on one
event loop that lives as long as the host, plain ones in a thread pool; and the queue output
binding that hands a message to the queue's function."""

from __future__ import annotations

import asyncio
import inspect
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class QueueOut:
    """An output binding that hands the message to the queue's function in the background."""

    def __init__(self, run: Callable[[str], None]) -> None:
        self._run = run
        self.value: str | None = None

    def set(self, value: str) -> None:
        """Queue one message."""
        self.value = value
        threading.Thread(target=self._run, args=(value,), daemon=True).start()

    def get(self) -> str | None:
        """The message set, if any."""
        return self.value


def call_once(handler: Callable[..., Any], *args: Any) -> Any:
    """Run one handler to completion, awaiting it if it is a coroutine function."""
    result = handler(*args)
    return asyncio.run(result) if inspect.isawaitable(result) else result


def default_threads() -> int:
    """The worker's thread pool size: `PYTHON_THREADPOOL_THREAD_COUNT`, else what Python 3.9+
    workers use when it is unset (ThreadPoolExecutor's default, min(32, CPUs + 4))."""
    given = os.environ.get("PYTHON_THREADPOOL_THREAD_COUNT", "")
    return int(given) if given.isdigit() and int(given) > 0 else min(32, (os.cpu_count() or 1) + 4)


class Worker:
    """Runs handlers as the Functions Python worker does: every async handler on one event loop
    (its own thread, for as long as the host runs), plain handlers in a thread pool of `threads`.

    So state that belongs to an event loop (httpx clients, asyncio locks) lives across requests
    here as it does in Azure. One worker process only: the host's FUNCTIONS_WORKER_PROCESS_COUNT
    would need several processes behind one port.
    """

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads or default_threads()
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="worker")
        self.loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(
            target=self.loop.run_forever, name="worker-loop", daemon=True
        )
        self._loop_thread.start()

    def call(self, handler: Callable[..., Any], *args: Any) -> Any:
        """Run one invocation and wait for its result (or exception)."""
        if inspect.iscoroutinefunction(handler):
            return asyncio.run_coroutine_threadsafe(handler(*args), self.loop).result()
        return self._pool.submit(handler, *args).result()

    def close(self) -> None:
        """Stop the loop and the pool."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._loop_thread.join()
        self.loop.close()
        self._pool.shutdown(wait=True)
