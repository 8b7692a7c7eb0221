"""One Table Storage service client and connection pool per process, shared by every table and
thread, against a real Azurite."""

from __future__ import annotations

import copy
import pickle
import socketserver
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.core.exceptions import HttpResponseError
from requests.utils import get_environ_proxies

from shared.runtime.process import get_store
from shared.settings import load_settings
from shared.store import service as service_module
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


def test_concurrent_callers_share_one_pool_and_reuse_its_connections(configure):
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
        pools = transport.session.get_adapter(store.service.url).poolmanager
        connections = pools.connection_from_url(store.service.url)
        # The pool keeps a connection for each caller in flight, so none is opened per request
        # and thrown away (requests' default keeps 10).
        assert connections.pool.maxsize >= CALLERS
        opened = connections.num_connections
        assert opened <= CALLERS
        barrier.reset()
        assert list(pool.map(read, range(CALLERS))) == [1] * CALLERS
    # The second round found every connection it needed in the pool.
    assert connections.num_connections == opened


# -- the environment, read once: what requests would read per request ------------------------------


class RecordingProxy(socketserver.ThreadingTCPServer):
    """An HTTP proxy on loopback that records each request line and answers 503."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        self.lines: list[str] = []
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        assert isinstance(self.server, RecordingProxy)
        self.server.lines.append(self.rfile.readline().decode("latin-1").strip())
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
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


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
def test_the_environments_proxy_carries_table_calls(configure, monkeypatch, azurite, proxy, name):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    monkeypatch.setenv(name, proxy.url)
    with pytest.raises(HttpResponseError) as refused:
        _rules_via_fresh_store()
    assert refused.value.status_code == 503  # the proxy's answer
    # Sent to the proxy in absolute form: the proxy was asked to reach Azurite.
    assert proxy.lines and proxy.lines[0].split()[1].startswith(azurite.endpoint + "/")


def test_no_proxy_naming_the_storage_host_goes_direct(configure, monkeypatch, proxy):
    configure("http://127.0.0.1:9")
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "example.com,127.0.0.1")
    assert _rules_via_fresh_store() == 0
    assert proxy.lines == []


def test_the_ca_bundle_named_by_the_environment_verifies_tls(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    session = pooled_transport().session
    url = "https://account.table.core.windows.net/Tables"
    assert session.merge_environment_settings(url, {}, None, True, None)["verify"] == str(bundle)
    # A verify the caller chose (off, or a file of its own) is the caller's.
    assert session.merge_environment_settings(url, {}, None, False, None)["verify"] is False
    own = session.merge_environment_settings(url, {}, None, "/etc/own-ca.pem", None)
    assert own["verify"] == "/etc/own-ca.pem"
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")
    monkeypatch.setenv("CURL_CA_BUNDLE", str(bundle))
    assert pooled_transport().session.merge_environment_settings(url, {}, None, True, None)[
        "verify"
    ] == str(bundle)


def test_the_environment_is_read_once_per_host_and_kept_across_copies(monkeypatch):
    _without_proxies(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/msp-ca.pem")
    reads: list[str] = []

    def counted(url: str, no_proxy: str | None = None) -> dict[str, str]:
        reads.append(url)
        return get_environ_proxies(url, no_proxy=no_proxy)

    monkeypatch.setattr(service_module, "get_environ_proxies", counted)
    session = pooled_transport().session
    assert session.trust_env is False  # requests itself reads nothing per request
    tables = "https://account.table.core.windows.net"
    for path in ("/Tables", "/Rules()", "/$batch"):
        merged = session.merge_environment_settings(tables + path, {}, None, True, None)
        assert merged["proxies"] == {"https": "http://proxy.example:3128"}
        assert merged["verify"] == "/etc/msp-ca.pem"
    assert len(reads) == 1
    # requests copies and pickles a session by its attribute list: what was read goes along.
    for twin in (copy.copy(session), pickle.loads(pickle.dumps(session))):
        merged = twin.merge_environment_settings(tables + "/Tables", {}, None, True, None)
        assert merged["proxies"] == {"https": "http://proxy.example:3128"}
        assert merged["verify"] == "/etc/msp-ca.pem"
