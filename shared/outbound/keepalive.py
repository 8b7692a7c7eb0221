"""A lean HTTP/1.1 transport for httpx: keep-alive connections per origin over asyncio streams,
the protocol parsed by h11 (as httpx's own transport does).

Why not httpx's default transport (httpcore) for the technician tab: with tens of views at once,
httpcore's pool re-examines every connection on every request and every response (for each idle
one a `getpeername` and a `poll` system call through anyio, to see whether the server closed it;
and a count of idle connections that walks the whole pool per connection), and wraps each read
in anyio's cancel scopes. In the tab under 20 concurrent callers that bookkeeping was about a
quarter of the event loop's CPU in a profile. Here an idle connection comes off a per-origin
stack in constant time; one the server closed is known from asyncio's own end-of-file notice
(the event loop watches every open socket anyway); timeouts are asyncio's.

What it does not do, as the clients using it never ask for it: HTTP/2, proxies, streamed request
bodies, `Expect: 100-continue`. Answers are read whole (the tab's are small), then decoded by
httpx as usual. Failures are httpx's own exceptions (`ConnectError`, `ReadTimeout`, ...), so the
vendor clients' retry and error handling see what they see from httpcore.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import h11
import httpx

Origin = tuple[bytes, str, int]  # scheme, host, port
_DEFAULT_PORTS = {b"http": 80, b"https": 443}
# Methods a request may be sent again for when a kept connection turns out closed before any
# answer: nothing was processed, and these change nothing anyway.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
_READ_SIZE = 65_536


class _Stale(Exception):
    """A kept connection was closed by the server before it answered anything."""


@dataclass(eq=False, slots=True)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    protocol: h11.Connection
    reused: bool = False
    expires: float = 0.0

    def usable(self, now: float) -> bool:
        """Idle, open at both ends as far as the event loop knows, and within its keep-alive."""
        return (
            now < self.expires
            and not self.reader.at_eof()
            and not self.writer.is_closing()
            and self.protocol.our_state is h11.IDLE
        )

    def close(self) -> None:
        """Close without waiting (a TLS close completes on the event loop)."""
        self.writer.close()


class KeepAliveTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive: at most `max_idle` idle connections per origin, each kept for
    `keepalive_seconds` (httpx's default expiry), as many open at once as requests need."""

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        keepalive_seconds: float = 5.0,
        max_idle: int = 20,
    ) -> None:
        self._ssl = ssl_context
        self._keepalive = keepalive_seconds
        self._max_idle = max_idle
        self._idle: dict[Origin, list[_Connection]] = {}
        self._closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` on a kept connection (or a new one) and read its whole answer."""
        url = request.url
        origin = (url.raw_scheme, url.host, url.port or _DEFAULT_PORTS.get(url.raw_scheme, 80))
        timeouts = request.extensions.get("timeout", {})
        body = await request.aread()
        kept = self._take(origin)
        if kept is not None:
            try:
                return await self._exchange(kept, origin, request, body, timeouts)
            except _Stale:
                if request.method not in _IDEMPOTENT:
                    raise httpx.RemoteProtocolError(
                        "the server closed a kept connection before answering", request=request
                    ) from None
        fresh = await self._connect(origin, timeouts.get("connect"), request)
        return await self._exchange(fresh, origin, request, body, timeouts)

    async def aclose(self) -> None:
        """Close every idle connection; one in use is closed when its answer is read."""
        self._closed = True
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()

    def _take(self, origin: Origin) -> _Connection | None:
        stack = self._idle.get(origin)
        now = time.monotonic()
        while stack:
            connection = stack.pop()  # the most recently used: the least likely to have expired
            if connection.usable(now):
                connection.reused = True
                return connection
            connection.close()
        return None

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        stack = self._idle.setdefault(origin, [])
        if self._closed or len(stack) >= self._max_idle:
            connection.close()
            return
        connection.expires = time.monotonic() + self._keepalive
        stack.append(connection)

    async def _connect(
        self, origin: Origin, within: float | None, request: httpx.Request
    ) -> _Connection:
        scheme, host, port = origin
        context = self._context() if scheme == b"https" else None
        try:
            async with asyncio.timeout(within):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"no connection to {host}:{port}", request=request) from None
        except OSError as error:
            raise httpx.ConnectError(str(error) or type(error).__name__, request=request) from None
        return _Connection(reader, writer, h11.Connection(h11.CLIENT))

    def _context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def _exchange(
        self,
        connection: _Connection,
        origin: Origin,
        request: httpx.Request,
        body: bytes,
        timeouts: dict[str, float | None],
    ) -> httpx.Response:
        try:
            await _send(connection, request, body, timeouts.get("write"))
            head, content = await _receive(connection, request, timeouts.get("read"))
        except BaseException:
            connection.close()  # half an exchange: the connection's state is unknown
            raise
        protocol = connection.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            self._keep(origin, connection)
        else:
            connection.close()
        return httpx.Response(
            head.status_code,
            headers=head.headers.raw_items(),
            stream=httpx.ByteStream(content),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason},
            request=request,
        )


async def _send(
    connection: _Connection, request: httpx.Request, body: bytes, within: float | None
) -> None:
    protocol = connection.protocol
    try:
        data = protocol.send(
            h11.Request(
                method=request.method.encode("ascii"),
                target=request.url.raw_path,
                headers=request.headers.raw,
            )
        )
        if body:
            data = (data or b"") + (protocol.send(h11.Data(data=body)) or b"")
        data = (data or b"") + (protocol.send(h11.EndOfMessage()) or b"")
    except h11.LocalProtocolError as error:
        raise httpx.LocalProtocolError(str(error), request=request) from None
    try:
        connection.writer.write(data)
        async with asyncio.timeout(within):
            await connection.writer.drain()
    except TimeoutError:
        raise httpx.WriteTimeout("the request was not sent in time", request=request) from None
    except OSError as error:
        if connection.reused:
            raise _Stale from None
        raise httpx.WriteError(str(error) or type(error).__name__, request=request) from None


async def _receive(
    connection: _Connection, request: httpx.Request, within: float | None
) -> tuple[h11.Response, bytes]:
    protocol = connection.protocol
    head: h11.Response | None = None
    chunks: list[bytes] = []
    while True:
        try:
            event = protocol.next_event()
        except h11.RemoteProtocolError as error:
            raise httpx.RemoteProtocolError(str(error), request=request) from None
        if event is h11.NEED_DATA:
            raw = await _read(connection, request, within, answered=head is not None)
            protocol.receive_data(raw)
        elif isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            chunks.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            return head, b"".join(chunks)
        elif isinstance(event, h11.ConnectionClosed):
            raise httpx.RemoteProtocolError("the server closed the connection", request=request)
        # h11.InformationalResponse (1xx): the final answer follows


async def _read(
    connection: _Connection, request: httpx.Request, within: float | None, *, answered: bool
) -> bytes:
    try:
        async with asyncio.timeout(within):
            raw = await connection.reader.read(_READ_SIZE)
    except TimeoutError:
        raise httpx.ReadTimeout("no answer in time", request=request) from None
    except OSError as error:
        if connection.reused and not answered:
            raise _Stale from None
        raise httpx.ReadError(str(error) or type(error).__name__, request=request) from None
    if not raw and connection.reused and not answered:
        raise _Stale
    return raw
