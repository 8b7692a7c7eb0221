"""How the app reaches Table Storage: one service client, and one pooled connection transport under
it, per process.

Every table client the store hands out (`TableServiceClient.get_table_client`) wraps the service
client's transport, so all tables share one `requests.Session` and its connection pool; the Azure
SDK documents its clients as safe to share between threads, which is how the handlers use them
(the Functions worker's thread pool, and `asyncio.to_thread` from async handlers).

requests keeps 10 idle connections per host by default: with 20 concurrent callers, the other 10
open a new connection (a TCP and, in Azure, a TLS handshake) per request and throw it away after.
The pool here keeps as many connections as the worker runs requests at once.

requests also reads the environment on every request (`trust_env`): it scans every variable for
proxies, looks for a netrc file and a CA bundle. A Functions app's settings are its environment,
so each Table call paid about 0.3 ms of CPU for an answer that cannot change while the process
lives. The session here reads it once per host and keeps the answer.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import requests
from azure.core.pipeline.transport import RequestsTransport
from azure.data.tables import TableServiceClient
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies
from urllib3.util.retry import Retry

from shared.settings import Settings

# Connections kept open per host: the Functions worker's default thread pool is at most 32 threads.
POOL_CONNECTIONS = 32
# azure-core waits 300 s to connect and 300 s per read by default, per attempt: a stalled storage
# connection would hold a request (and a worker thread) far past the HTTP front end's 230 s. A
# Table round trip takes milliseconds, a 4 MiB transaction a second or two.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0


class SettledSession(requests.Session):
    """A session that reads the environment's proxies (with NO_PROXY) once per host and its CA
    bundle once, where requests reads them on every request.

    What it reads is what requests would: `get_environ_proxies` for the URL's scheme and host,
    then REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE. It reads no netrc file: the SDK signs every
    request itself, and a netrc entry for the storage host would have replaced that signature.
    """

    # requests copies and pickles a session by these names; the two read once go along.
    __attrs__ = [*requests.Session.__attrs__, "_ca_bundle", "_proxies_by_host"]

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # what it would read per request, read below once instead
        self._ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        self._proxies_by_host: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def environment_proxies(self, url: str, no_proxy: str | None = None) -> dict[str, str]:
        """The environment's proxies for `url`'s scheme and host ({} where NO_PROXY, or the
        request's own `no_proxy`, names it)."""
        scheme, host = urlsplit(url)[:2]
        key = (scheme, host, no_proxy)
        found = self._proxies_by_host.get(key)
        if found is None:
            found = self._proxies_by_host[key] = get_environ_proxies(url, no_proxy=no_proxy)
        return found

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> dict[str, Any]:
        """requests' own merge, with the environment's part from what was read once."""
        if proxies is not None:
            for scheme, proxy in self.environment_proxies(url, proxies.get("no_proxy")).items():
                proxies.setdefault(scheme, proxy)
        if (verify is True or verify is None) and self._ca_bundle:
            verify = self._ca_bundle
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def pooled_transport(pool: int = POOL_CONNECTIONS) -> RequestsTransport:
    """A transport whose session keeps `pool` connections per host for reuse and reads the
    environment once (SettledSession).

    As azure-core's own session does, it leaves retries to the SDK's retry policy (requests must
    not retry, redirect or raise on status by itself).
    """
    session = SettledSession()
    no_retries = Retry(total=False, redirect=False, raise_on_status=False)
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool, max_retries=no_retries)
    for scheme in ("http://", "https://"):
        session.mount(scheme, adapter)
    # The transport owns the session: closing the service client closes the pool.
    return RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def table_service(settings: Settings, **kwargs: Any) -> TableServiceClient:
    """The service client for the configured account: a connection string (Azurite, account key)
    or an endpoint reached with DefaultAzureCredential, over a pooled transport."""
    kwargs.setdefault("transport", pooled_transport())
    if settings.tables_connection_string is not None:
        return TableServiceClient.from_connection_string(
            settings.tables_connection_string.get_secret_value(), **kwargs
        )
    from azure.identity import DefaultAzureCredential  # imported only where it is used

    return TableServiceClient(
        str(settings.tables_endpoint), credential=DefaultAzureCredential(), **kwargs
    )
