"""One Table Storage service client and connection pool per process, shared by every table and
thread, against a real Azurite."""

from __future__ import annotations

import base64
import http.server
import re
import shutil
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from requests.utils import get_environ_proxies
from urllib3.exceptions import InsecureRequestWarning

from shared.runtime.process import get_store
from shared.settings import load_settings
from shared.store import transport as transport_module
from shared.store.repository import Store
from shared.store.service import pooled_transport, table_service

pytestmark = pytest.mark.integration
CALLERS = 20


def test_the_process_store_and_its_table_clients_are_built_once(configure):
    configure("http://127.0.0.1:9")
    store = get_store()
    assert get_store() is store
    assert store.table("Rules") is store.table("Rules")
    assert store.table("Rules", create=False) is store.table("Rules")


def test_concurrent_callers_share_one_store_and_transport(configure):
    configure("http://127.0.0.1:9")
    settings = load_settings()
    store = Store(table_service(settings), prefix=settings.tables_prefix)
    store.put_rule_document("r", {"software": "R"})
    barrier = threading.Barrier(CALLERS)

    def read(_: int) -> int:
        barrier.wait()  # all callers in flight together
        return len(store.rule_documents())

    with ThreadPoolExecutor(CALLERS) as pool:
        assert list(pool.map(read, range(CALLERS))) == [1] * CALLERS
    transport = store.service._client._client._pipeline._transport  # the one transport
    assert 1 <= transport.pool_for(store.service.url).num_connections <= CALLERS


class _AllAtOnce(http.server.BaseHTTPRequestHandler):
    """Answers only once CALLERS requests are in flight together, each on its own connection."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.arrived.wait()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_the_pool_keeps_a_connection_for_every_caller_in_flight():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AllAtOnce)
    server.daemon_threads = True
    server.arrived = threading.Barrier(CALLERS, timeout=30)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/Tables"
    transport = pooled_transport()
    try:
        with ThreadPoolExecutor(CALLERS) as pool:
            for _ in range(3):
                statuses = pool.map(lambda _: _get(transport, url), range(CALLERS))
                assert list(statuses) == [200] * CALLERS
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    # Each round had CALLERS connections in flight at once; the pool kept them all, so the next
    # rounds opened none (with requests' default of 10 kept, each round opened 10 afresh).
    assert transport.pool_for(url).num_connections == CALLERS


# -- the environment, read once: what requests would read per request ------------------------------


class RecordingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on loopback that records each request line and answers 503."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.headers: dict[str, str] = {}  # of the last request, by lower-case name
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, RecordingProxy)
        self.server.lines.append(self.rfile.readline().decode("latin-1").strip())
        while (line := self.rfile.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            self.server.headers[name.strip().lower()] = value.strip()
        self.wfile.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


@pytest.fixture
def proxy() -> Iterator[RecordingProxy]:
    server = RecordingProxy()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    thread.join()
    server.server_close()


_PROXY_VARIABLES = [
    spelling
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    for spelling in (name, name.upper())
]


def _without_proxies(monkeypatch) -> None:
    # requests prefers the lower-case spellings: a machine's own no_proxy or all_proxy would win.
    for variable in _PROXY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)


def _rules_via_fresh_store() -> int:
    settings = load_settings()
    store = Store(table_service(settings, retry_total=0), prefix=settings.tables_prefix)
    return len(store.rule_documents())


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "HTTP_PROXY no scheme"])
def test_the_environments_proxy_carries_table_calls(configure, monkeypatch, azurite, proxy, name):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    # "host:port" without a scheme is an http proxy, as requests reads it.
    variable, _, bare = name.partition(" ")
    monkeypatch.setenv(variable, proxy.url.removeprefix("http://") if bare else proxy.url)
    with pytest.raises(HttpResponseError) as refused:
        _rules_via_fresh_store()
    assert refused.value.status_code == 503  # the proxy's answer
    # Sent to the proxy in absolute form: the proxy was asked to reach Azurite.
    assert proxy.lines and proxy.lines[0].split()[1].startswith(azurite.endpoint + "/")


def test_a_socks_proxy_that_cannot_be_reached_is_a_request_error(configure, monkeypatch):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        closed = placeholder.getsockname()[1]
    monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{closed}")
    # An azure-core error, as for any unreachable storage (the API answers it with a 503).
    with pytest.raises(ServiceRequestError, match="Connection refused"):
        _rules_via_fresh_store()


def test_a_socks_proxy_without_pysocks_says_what_is_missing(configure, monkeypatch):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:1080")
    monkeypatch.setitem(sys.modules, "urllib3.contrib.socks", None)  # as where it is not installed
    with pytest.raises(ServiceRequestError, match="needs the PySocks package"):
        _rules_via_fresh_store()


def test_a_proxy_urls_credentials_are_sent_as_proxy_authorization(configure, monkeypatch, proxy):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://msp:p%40ss@"))
    with pytest.raises(HttpResponseError):
        _rules_via_fresh_store()
    assert proxy.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"msp:p@ss").decode()
    # The SDK's own signature still goes to the storage account, not to the proxy's credentials.
    assert proxy.headers["authorization"].startswith("SharedKey ")


def test_no_proxy_naming_the_storage_host_goes_direct(configure, monkeypatch, proxy):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    assert _rules_via_fresh_store() == 0
    assert proxy.lines == []


def test_the_environment_is_read_once_per_host(monkeypatch):
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    reads: list[str] = []

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return get_environ_proxies(url, no_proxy=no_proxy)

    monkeypatch.setattr(transport_module, "get_environ_proxies", counted)
    transport = pooled_transport()
    tables = "https://account.table.core.windows.net"
    for path in ("/Tables", "/Rules()", "/$batch"):
        assert transport.environment_proxies(tables + path) == {
            "https": "http://proxy.example:3128"
        }
        assert transport.pool_for(tables + path).host == "account.table.core.windows.net"
    assert transport.pool_for(tables).proxy.host == "proxy.example"
    assert reads == [tables + "/Tables"]


# -- TLS: verified against certifi's roots, or the bundle the environment or the caller names -------


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on loopback answering 200 to any GET, with a certificate of its own CA
    (the CA's PEM file is the second member)."""
    from tests.store.tls import serve_tls

    with serve_tls(tmp_path_factory.mktemp("tls")) as served:
        yield served


def _get(transport, url: str, **kwargs) -> int:
    return transport.send(HttpRequest("GET", url), **kwargs).status_code


def test_tls_is_verified_against_certifi_unless_the_environment_names_a_bundle(
    monkeypatch, tls_server
):
    url, ca = tls_server
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(pooled_transport(), url)  # certifi's roots do not know this CA
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.setenv(name, str(ca))
        assert _get(pooled_transport(), url) == 200
        monkeypatch.delenv(name)


def test_a_callers_own_verify_wins_over_the_environment(monkeypatch, tls_server, tmp_path):
    url, ca = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))
    other = tmp_path / "other.pem"
    other.write_text(certifi_pem())
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(pooled_transport(), url, connection_verify=str(other))
    with pytest.warns(InsecureRequestWarning):  # urllib3 says so, as it does under requests
        assert _get(pooled_transport(), url, connection_verify=False) == 200
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert _get(pooled_transport(), url, connection_verify=str(ca)) == 200


def test_a_ca_bundle_directory_verifies_as_requests_reads_one(monkeypatch, tls_server, tmp_path):
    url, ca = tls_server
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to name a certificate directory's entries")
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    directory = tmp_path / "certs"
    directory.mkdir()
    (directory / f"{subject_hash}.0").write_bytes(ca.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(directory))
    assert _get(pooled_transport(), url) == 200
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    assert _get(pooled_transport(), url, connection_verify=str(directory)) == 200


def test_verify_none_still_verifies(monkeypatch, tls_server):
    url, _ = tls_server
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        _get(pooled_transport(), url, connection_verify=None)


def test_a_missing_client_certificate_file_is_a_request_error_naming_it(tls_server, tmp_path):
    url, _ = tls_server
    missing = tmp_path / "client.pem"
    with pytest.raises(ServiceRequestError, match=re.escape(f"{missing} does not exist")):
        _get(pooled_transport(), url, connection_cert=str(missing))


def certifi_pem() -> str:
    import certifi

    return Path(certifi.where()).read_text()
