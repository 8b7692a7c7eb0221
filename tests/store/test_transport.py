"""The Table transport (azure-core's contract over urllib3): answers read whole or streamed on
pooled connections, and each failure raised as the azure-core error the SDK's retries expect."""

from __future__ import annotations

import itertools
import re
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from azure.core import exceptions as azure_errors
from azure.core.rest import HttpRequest
from urllib3.exceptions import ConnectTimeoutError
from urllib3.exceptions import DecodeError as BodyDecodeError

from shared.store.transport import PooledTransport, _azure_error
from tests.conftest import azurite_service

Answer = Callable[[socket.socket], None]
_names = itertools.count()


@pytest.fixture
def raw_server() -> Iterator[Callable[[Answer], str]]:
    """A loopback server whose every connection is handled by the given function: its URL."""
    servers: list[tuple[socket.socket, threading.Thread]] = []

    def serve(answer: Answer) -> str:
        listener = socket.create_server(("127.0.0.1", 0))

        def accept() -> None:
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=answer, args=(connection,), daemon=True).start()

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        servers.append((listener, acceptor))
        return f"http://127.0.0.1:{listener.getsockname()[1]}/Tables"

    yield serve
    for listener, acceptor in servers:
        # Shut down, and the accept loop ended, before the descriptor is closed: a loop still
        # about to call accept() on the number would take the connections of whichever listener
        # a later test opens under the same number, and answer them as this test's server.
        listener.shutdown(socket.SHUT_RDWR)
        acceptor.join(timeout=10)
        assert not acceptor.is_alive(), "the accept loop did not end"
        listener.close()


def _read_request(connection: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = connection.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def _keep_answering(body: bytes) -> Answer:
    def answer(connection: socket.socket) -> None:
        with connection:
            while _read_request(connection):
                head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                connection.sendall(head + body)

    return answer


def transport(read_timeout: float = 5.0) -> PooledTransport:
    return PooledTransport(pool_size=4, connect_timeout=2.0, read_timeout=read_timeout)


def test_answers_read_whole_or_streamed_reuse_one_connection(raw_server):
    body = b'{"value": []}' * 10_000  # several blocks
    url = raw_server(_keep_answering(body))
    sender = transport()
    whole = sender.send(HttpRequest("GET", url))
    assert whole.status_code == 200 and whole.content == body and whole.is_closed
    streamed = sender.send(HttpRequest("GET", url), stream=True)
    assert not streamed.is_stream_consumed
    assert b"".join(streamed.iter_bytes()) == body
    assert sender.send(HttpRequest("GET", url), stream=True).read() == body
    assert sender.send(HttpRequest("GET", url)).text() == body.decode()
    assert sender.pool_for(url).num_connections == 1


def test_a_refused_connection_is_a_request_error(raw_server):
    url = raw_server(_keep_answering(b""))
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed = placeholder.getsockname()[1]
    assert closed != port
    with pytest.raises(azure_errors.ServiceRequestError) as refused:
        transport().send(HttpRequest("GET", f"http://127.0.0.1:{closed}/Tables"))
    assert not isinstance(refused.value, azure_errors.ServiceResponseError)


def test_an_answer_that_never_comes_is_a_response_timeout(raw_server):
    def silent(connection: socket.socket) -> None:
        _read_request(connection)
        threading.Event().wait(5)  # holds the connection open, answering nothing
        connection.close()

    url = raw_server(silent)
    with pytest.raises(azure_errors.ServiceResponseTimeoutError):
        transport(read_timeout=0.3).send(HttpRequest("GET", url))


def test_a_connection_dropped_before_the_answer_is_a_response_error(raw_server):
    def drop(connection: socket.socket) -> None:
        _read_request(connection)
        connection.close()

    with pytest.raises(azure_errors.ServiceResponseError):
        transport().send(HttpRequest("GET", raw_server(drop)))


def test_a_body_cut_short_is_an_incomplete_read_streamed_or_not(raw_server):
    def short(connection: socket.socket) -> None:
        with connection:
            _read_request(connection)
            connection.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"cut')

    url = raw_server(short)
    # As RequestsTransport raises it: the answer began and its body ended short.
    with pytest.raises(azure_errors.IncompleteReadError):
        transport().send(HttpRequest("GET", url))
    with pytest.raises(azure_errors.IncompleteReadError):
        transport().send(HttpRequest("GET", url), stream=True).read()


def test_a_text_body_goes_as_utf8_with_its_length_in_bytes_and_none_headers_are_left_out(
    raw_server,
):
    heads: list[bytes] = []

    def echo(connection: socket.socket) -> None:
        with connection:
            data = _read_request(connection)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
            while len(body) < length:
                body += connection.recv(65536)
            heads.append(head + b"\r\n\r\n" + body)
            connection.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")

    url = raw_server(echo)
    request = HttpRequest("PUT", url, content='{"name": "Zoë ☃"}')
    request.headers["x-ms-client-request-id"] = None  # type: ignore[assignment]
    assert transport().send(request).status_code == 204
    head, _, body = heads[0].partition(b"\r\n\r\n")
    assert body == '{"name": "Zoë ☃"}'.encode()
    assert f"content-length: {len(body)}".encode() in head.lower()
    assert b"x-ms-client-request-id" not in head.lower()


def test_failures_before_an_answer_map_as_requests_transport_maps_them():
    timeout = ConnectTimeoutError("connecting timed out")
    assert type(_azure_error(timeout)) is azure_errors.ServiceRequestTimeoutError
    assert type(_azure_error(BodyDecodeError("bad gzip"))) is azure_errors.DecodeError


def test_an_unknown_option_is_refused_not_dropped(raw_server):
    url = raw_server(_keep_answering(b""))
    with pytest.raises(TypeError, match="cert_reqs"):
        transport().send(HttpRequest("GET", url), cert_reqs="none")


def test_the_sdks_own_transaction_goes_through_it(azurite):
    """`TableClient.submit_transaction` sends the older pipeline request and reads the multipart
    answer's parts: both work over this transport."""
    service = azurite_service(azurite)
    table = service.create_table(f"transport{next(_names)}")
    rows = [{"PartitionKey": "p", "RowKey": f"{n:03d}", "name": f"Zoë {n}"} for n in range(5)]
    answers = table.submit_transaction([("upsert", row) for row in rows])
    assert len(answers) == 5 and all("etag" in a for a in answers)
    assert [e["name"] for e in table.list_entities()] == [r["name"] for r in rows]
