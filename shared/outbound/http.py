"""What both vendor clients share around httpx: the owned connection pool and its lifecycle, and
the one `outgoing_call` log line per logical call (its retries included)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass
from types import TracebackType
from typing import Self, TypeVar

import httpx

from shared.telemetry import log_outgoing_call

T = TypeVar("T")
USER_AGENT = "halo-immy/0.1"


@dataclass(slots=True)
class CallRecord:
    """What one logical call met across its tries: the last status, retries and 429s."""

    status: int | None = None
    retries: int = 0
    throttled: int = 0


async def logged_call(
    vendor: str, method: str, path: str, call: CallRecord, sending: Awaitable[T]
) -> T:
    """Await `sending` and log one `outgoing_call` line for it, timed, with the failure's type."""
    started = time.perf_counter()
    error: str | None = None
    try:
        return await sending
    except BaseException as failure:
        error = type(failure).__name__
        raise
    finally:
        log_outgoing_call(
            vendor,
            method,
            path,
            status=call.status,
            started=started,
            retries=call.retries,
            throttled=call.throttled,
            error=error,
        )


def open_http(
    base_url: str, timeout: float, transport: httpx.AsyncBaseTransport | None
) -> httpx.AsyncClient:
    """The JSON connection pool a vendor client owns: short connect timeout, no redirects."""
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        transport=transport,
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        follow_redirects=False,
    )


class OwnsHttp:
    """Base of a client that owns `self._http`: `async with` closes it on the way out."""

    _http: httpx.AsyncClient

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the underlying connection pool."""
        await self._http.aclose()
