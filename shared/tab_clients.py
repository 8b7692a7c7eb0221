"""The tab's HaloPSA and ImmyBot clients: built once per process and event loop, then reused.

A new client per view means a new connection pool, so a new TCP and TLS handshake to HaloPSA and to
ImmyBot on every tab view. An `httpx.AsyncClient` is bound to the event loop it first runs on: the
Functions worker runs every invocation on one loop, so there the tab keeps one client per service
for the life of the process; tests and scripts that call `asyncio.run` per request get one per
loop. A loop's clients are closed when the loop shuts its async generators down (`asyncio.run`
does, on exit), so no socket outlives its loop.

Private to the tab for now; `shared/clients.py` (process-wide clients) supersedes it when merged.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from shared.halo_client import HaloClient, RequestBudget, RetryPolicy, TokenCache
from shared.immy_client import ImmyClient
from shared.settings import Settings

_tokens = TokenCache()


@dataclass
class _LoopClients:
    settings: Settings  # the settings the clients were built from (kept alive: compared by `is`)
    halo: HaloClient | None = None
    immy: ImmyClient | None = None
    closer: AsyncIterator[None] | None = field(default=None, repr=False)


_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClients] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


async def _close_with_loop(entry: _LoopClients) -> AsyncIterator[None]:
    # An async generator the loop finalises in `shutdown_asyncgens()`: the one hook `asyncio.run`
    # offers at its end, so the clients close on their own loop.
    try:
        yield
    finally:
        await close(entry)


async def close(entry: _LoopClients) -> None:
    """Close one loop's clients."""
    for client in (entry.halo, entry.immy):
        if client is not None:
            await client.aclose()
    entry.halo = entry.immy = None


async def _entry(settings: Settings) -> _LoopClients:
    loop = asyncio.get_running_loop()
    with _lock:
        entry = _by_loop.get(loop)
        stale = entry if entry is not None and entry.settings is not settings else None
        if entry is None or stale is not None:
            entry = _by_loop[loop] = _LoopClients(settings)
    if stale is not None:  # settings were reloaded (tests, a rotated secret): start afresh
        await close(stale)
    if entry.closer is None:
        entry.closer = _close_with_loop(entry)
        await anext(entry.closer)
    return entry


async def halo_client(settings: Settings) -> HaloClient:
    """This loop's HaloPSA client for the tab: no retries (a pause would outlast the tab)."""
    entry = await _entry(settings)
    if entry.halo is None:
        entry.halo = HaloClient.from_settings(
            settings,
            budget=RequestBudget(settings.halo_requests_per_minute),
            # No retries, not even after a 429: its pause would outlast the tab's time budget.
            retry=RetryPolicy(max_attempts=1, max_throttled=0),
            timeout=settings.tab_halo_timeout_seconds,
            token_cache=_tokens,
        )
    return entry.halo


async def immy_client(settings: Settings) -> ImmyClient | None:
    """This loop's ImmyBot client for the tab (None when ImmyBot is not configured)."""
    entry = await _entry(settings)
    if entry.immy is None and settings.immybot is not None:
        # One attempt: the tab's deadline leaves no room for a retry's pause.
        entry.immy = ImmyClient.from_settings(settings, retry=RetryPolicy(max_attempts=1))
    return entry.immy
