"""The tab's keep-alive transport against a loopback HTTP/1.1 server whose behaviour each test
sets: connections kept and reused, answers of every framing, and failures as httpx's own."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest

from shared.outbound.keepalive import KeepAliveTransport

# One answer: status, extra header lines, body; or None to close the connection unanswered.
Answer = tuple[int, list[str], bytes] | None


@dataclass
class Server:
    """Counts connections and requests; `answer` decides what each request gets."""

    answer: Callable[[str, str], Awaitable[Answer]]
    connections: int = 0
    requests: list[str] = field(default_factory=list)
    writers: list[asyncio.StreamWriter] = field(default_factory=list)
    url: str = ""

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                method, target, _ = lines[0].split(" ")
                length = next(
                    (int(x.split(":")[1]) for x in lines if x.lower().startswith("content-length")),
                    0,
                )
                body = await reader.readexactly(length) if length else b""
                self.requests.append(f"{method} {target} {body.decode()}".strip())
                answer = await self.answer(method, target)
                if answer is None:
                    break
                status, headers, payload = answer
                if not any(h.lower().startswith("transfer-encoding") for h in headers):
                    headers = [*headers, f"Content-Length: {len(payload)}"]
                writer.write(
                    f"HTTP/1.1 {status} X\r\n{''.join(h + chr(13) + chr(10) for h in headers)}\r\n".encode()
                    + payload
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Callable[[str, str], Awaitable[Answer]]) -> Server:
        found = Server(answer)
        server = await asyncio.start_server(found.handle, "127.0.0.1", 0)
        servers.append(server)
        found.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        return found

    yield start
    for server in servers:
        server.close()


async def ok(method: str, target: str) -> Answer:
    return 200, ["Content-Type: application/json"], json.dumps({"target": target}).encode()


async def test_sequential_requests_share_one_kept_connection(serve):
    server = await serve(ok)
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        for number in range(5):
            response = await client.get(f"/a/{number}", params={"q": "x y"})
            assert response.json() == {"target": f"/a/{number}?q=x+y"}
    assert server.connections == 1 and len(server.requests) == 5


async def test_concurrent_requests_open_a_connection_each_and_keep_them(serve):
    async def slow(method: str, target: str) -> Answer:
        await asyncio.sleep(0.05)
        return await ok(method, target)

    server = await serve(slow)
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        first = await asyncio.gather(*(client.get(f"/{n}") for n in range(10)))
        again = await asyncio.gather(*(client.get(f"/{n}") for n in range(10)))
    assert [r.status_code for r in first + again] == [200] * 20
    assert server.connections == 10  # the second round ran on the first round's connections


async def test_a_body_and_chunked_and_gzipped_answers(serve):
    async def framed(method: str, target: str) -> Answer:
        if target == "/chunked":
            return 200, ["Transfer-Encoding: chunked"], b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
        if target == "/gzip":
            return 200, ["Content-Encoding: gzip"], gzip.compress(b"packed")
        return 201, [], b""

    server = await serve(framed)
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        assert (await client.get("/chunked")).text == "hello world"
        assert (await client.get("/gzip")).text == "packed"
        posted = await client.post("/token", data={"grant_type": "client_credentials"})
        assert posted.status_code == 201
    assert server.requests[-1] == "POST /token grant_type=client_credentials"
    assert server.connections == 1


async def test_a_connection_the_server_closed_while_idle_costs_the_next_get_nothing(serve):
    server = await serve(ok)
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        await client.get("/first")
        for writer in server.writers:
            writer.close()  # the server's keep-alive ran out
        await asyncio.gather(*(writer.wait_closed() for writer in server.writers))
        assert (await client.get("/second")).status_code == 200
    assert server.connections == 2
    assert server.requests == ["GET /first", "GET /second"]


def dropping_the_second():
    """A handler that closes the connection unanswered on the second request it sees."""
    answered = [0]

    async def drop_the_second(method: str, target: str) -> Answer:
        answered[0] += 1
        return None if answered[0] == 2 else await ok(method, target)

    return drop_the_second


async def test_a_get_on_a_kept_connection_closed_unanswered_is_sent_once_more(serve):
    server = await serve(dropping_the_second())
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        await client.get("/first")
        assert (await client.get("/second")).json() == {"target": "/second"}
    assert server.requests == ["GET /first", "GET /second", "GET /second"]


async def test_a_post_on_a_kept_connection_closed_unanswered_is_not_sent_again(serve):
    server = await serve(dropping_the_second())
    async with httpx.AsyncClient(transport=KeepAliveTransport(), base_url=server.url) as client:
        await client.get("/first")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post("/write", content=b"{}")
    assert server.requests == ["GET /first", "POST /write {}"]


async def test_failures_are_httpx_transport_errors(serve):
    async def never(method: str, target: str) -> Answer:
        await asyncio.sleep(5)
        return None

    server = await serve(never)
    transport = KeepAliveTransport()
    async with httpx.AsyncClient(transport=transport, base_url=server.url, timeout=0.2) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow")
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:9/closed-port")
    assert transport._idle == {}  # nothing half-read was kept


async def test_a_cancelled_request_leaves_no_connection_to_reuse(serve):
    async def slow(method: str, target: str) -> Answer:
        await asyncio.sleep(1)
        return await ok(method, target)

    server = await serve(slow)
    transport = KeepAliveTransport()
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(client.get("/late"), 0.1)  # as the tab's deadline does
        assert all(not stack for stack in transport._idle.values())


async def test_kept_connections_expire_and_are_bounded(serve):
    server = await serve(ok)
    transport = KeepAliveTransport(keepalive_seconds=0.0, max_idle=1)
    async with httpx.AsyncClient(transport=transport, base_url=server.url) as client:
        await client.get("/one")
        await client.get("/two")  # the first connection expired at once: a new one
        assert server.connections == 2
        await asyncio.gather(client.get("/a"), client.get("/b"))
        assert sum(len(stack) for stack in transport._idle.values()) == 1  # one kept, one closed
