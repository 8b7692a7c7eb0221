"""Long-lived HaloPSA and ImmyBot clients for the HTTP functions, built once and reused.

A client per invocation costs a TCP and TLS handshake per call to HaloPSA and ImmyBot. These are
built lazily from settings and kept, so invocations share their connection pools and tokens.

An httpx.AsyncClient (and the asyncio locks inside the clients) belongs to the event loop it first
ran in. The Functions Python worker runs every async invocation on one loop, so there one client
of each kind lives as long as the process. Tests and scripts that call `asyncio.run` per request
get a new loop each time: clients are therefore kept per running loop, and closed when that loop
shuts its async generators down (`asyncio.run` does, on exit), so no socket outlives its loop.

Clients are also keyed by the settings object: after `get_settings.cache_clear()` the next call
builds new ones from the new settings (the old ones are left to the garbage collector, since an
invocation still running may hold them).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from shared.halo.auth import TokenCache
from shared.halo.client import HaloClient
from shared.immybot.auth import MsalApplications
from shared.immybot.client import ImmyClient
from shared.outbound.budget import RetryPolicy
from shared.outbound.keepalive import KeepAliveTransport
from shared.runtime.process import get_settings
from shared.settings import Settings


@dataclass(slots=True)
class _LoopClients:
    loop: weakref.ref[asyncio.AbstractEventLoop]
    settings: Settings
    halo: HaloClient | None = None
    immy: ImmyClient | None = None
    immy_built: bool = False
    closer: AsyncIterator[None] | None = field(default=None, repr=False)


# By id() of the loop: a loop's clients hold the loop itself, so a WeakKeyDictionary keyed by it
# would never let go. Entries of closed or collected loops are pruned on every lookup.
_by_loop: dict[int, _LoopClients] = {}
_lock = threading.Lock()
# HaloPSA tokens are plain data: one cache serves every loop's client.
_halo_tokens = TokenCache()
# ImmyBot's msal applications (and their token caches), one per identity for the process: the
# tab, the sync and the setup check share a token instead of each asking Entra ID.
_immy_applications = MsalApplications()


def immy_applications() -> MsalApplications:
    """The process's msal applications, for any ImmyBot client built outside this module."""
    return _immy_applications


def forget_applications() -> None:
    """Drop every cached msal application and its tokens (after a secret rotation, and in tests)."""
    _immy_applications.clear()


async def halo_for_tab() -> HaloClient:
    """The HaloPSA client of the technician tab for the running loop: the tab's timeout
    (`TAB_HALO_TIMEOUT_SECONDS`) and no retries (a retry's pause would outlast the tab's time
    budget). No request budget: a view costs one request, as when each view had its own client.
    Its connections are `shared.outbound.keepalive`'s (httpcore's pool bookkeeping took about a
    quarter of the event loop's CPU at 20 views at once).
    """
    clients = await _clients()
    if clients.halo is None:
        settings = clients.settings
        clients.halo = HaloClient(
            settings.halo_base,
            settings.halo_client_id,
            settings.halo_client_secret,
            tenant=settings.halo_tenant,
            scope=settings.halo_scope,
            timeout=settings.tab_halo_timeout_seconds,
            retry=RetryPolicy(max_attempts=1, max_throttled=0),
            budget=None,
            token_cache=_halo_tokens,
            transport=KeepAliveTransport(),
        )
    return clients.halo


async def immy_for_tab() -> ImmyClient | None:
    """The tab's ImmyBot client for the running loop, or None when ImmyBot is not configured.
    One attempt per request: the tab's deadline leaves no room for a retry's pause. Connections
    as `halo_for_tab`'s."""
    clients = await _clients()
    if not clients.immy_built:
        clients.immy = ImmyClient.from_settings(
            clients.settings,
            retry=RetryPolicy(max_attempts=1),
            applications=_immy_applications,
            transport=KeepAliveTransport(),
        )
        clients.immy_built = True
    return clients.immy


async def aclose_loop_clients() -> None:
    """Close and forget the running loop's clients now, rather than when the loop ends."""
    loop = asyncio.get_running_loop()
    with _lock:
        clients = _by_loop.pop(id(loop), None)
    if clients is not None and clients.loop() is loop:
        await _close(clients)


async def _close(clients: _LoopClients) -> None:
    for client in (clients.halo, clients.immy):
        if client is not None:
            await client.aclose()
    clients.halo = clients.immy = None


async def _close_with_loop(clients: _LoopClients) -> AsyncIterator[None]:
    # An async generator the loop finalises in `shutdown_asyncgens()`: the one hook `asyncio.run`
    # offers at its end, so the clients close on their own loop.
    try:
        yield
    finally:
        await _close(clients)


async def _clients() -> _LoopClients:
    loop = asyncio.get_running_loop()
    settings = get_settings()
    with _lock:
        for key in [k for k, c in _by_loop.items() if _gone(c)]:
            del _by_loop[key]
        clients = _by_loop.get(id(loop))
        if clients is None or clients.loop() is not loop or clients.settings is not settings:
            clients = _LoopClients(weakref.ref(loop), settings)
            _by_loop[id(loop)] = clients
    if clients.closer is None:
        clients.closer = _close_with_loop(clients)
        await anext(clients.closer)
    return clients


def _gone(clients: _LoopClients) -> bool:
    loop = clients.loop()
    return loop is None or loop.is_closed()
