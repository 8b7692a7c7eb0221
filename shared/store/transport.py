"""How the Table SDK's requests reach storage: azure-core's transport contract over urllib3's
connection pools, without requests' layers in between.

azure-core's `RequestsTransport` sends each call through a `requests.Session`, which merges the
session's settings and cookies into the request, prepares its URL again, gathers cookies from the
answer and builds a `requests.Response` that azure-core then wraps once more: bench/transport.py
measured 2.4 to 2.6 ms of client CPU per point read, upsert or query through it (the environment
read once, as the app did), 1.6 ms through this transport. None of it is anything the Table
service uses: the SDK signs each request itself and the service sets no cookies. This
transport hands the SDK's request to urllib3, which requests itself sends through, and wraps
urllib3's answer in azure-core's own response class.

What requests reads from the environment is read here too, once: the proxies for a scheme and host
(HTTP_PROXY, HTTPS_PROXY, ALL_PROXY, with NO_PROXY; "host:port" is an http proxy, socks5:// and
socks5h:// go through PySocks, and a proxy URL's user and password are sent as requests sends
them) and the CA bundle (REQUESTS_CA_BUNDLE, then CURL_CA_BUNDLE, else certifi's; a file or a
directory of hashed certificates, as requests reads them). No netrc file is read: a netrc entry for
the storage host would replace the SDK's signature. Failures are raised as the azure-core errors
`RequestsTransport` raises for them, so the SDK's retry policy treats them the same (see
`_azure_error` for the two that are more precise).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from http.client import IncompleteRead as HttpIncompleteRead
from typing import Any
from urllib.parse import urlsplit

import certifi
import urllib3
from azure.core.exceptions import (
    AzureError,
    DecodeError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceRequestTimeoutError,
    ServiceResponseError,
    ServiceResponseTimeoutError,
)
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse

# azure-core's base for a transport's response: its aiohttp and requests transports build on it.
from azure.core.rest._http_response_impl import HttpResponseImpl
from requests.utils import (
    get_auth_from_url,
    get_environ_proxies,
    prepend_scheme_if_needed,
    select_proxy,
)
from urllib3.exceptions import (
    ConnectTimeoutError,
    IncompleteRead,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import DecodeError as BodyDecodeError
from urllib3.exceptions import HTTPError as Urllib3Error

BLOCK_SIZE = 64 * 1024


class PooledTransport(HttpTransport[HttpRequest, HttpResponse]):
    """azure-core's `HttpTransport` over urllib3 pools keeping `pool_size` connections per host.

    Safe to share between threads, as the SDK's clients are: urllib3's pools are, and the
    environment's answers are kept under a lock.
    """

    def __init__(self, *, pool_size: int, connect_timeout: float, read_timeout: float) -> None:
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._ca_bundle = (
            os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
        )
        self._proxies_by_host: dict[tuple[str, str], dict[str, str]] = {}
        self._managers: dict[tuple[str | None, Any, Any], urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> PooledTransport:
        return self

    def __exit__(self, *args: object) -> None:
        self.close()

    def open(self) -> None:
        """Nothing to open: each pool connects on its first request."""

    def close(self) -> None:
        """Close every pooled connection; a later request opens new ones."""
        with self._lock:
            managers, self._managers = list(self._managers.values()), {}
        for manager in managers:
            manager.clear()

    def environment_proxies(self, url: str) -> dict[str, str]:
        """The environment's proxies for `url`'s scheme and host ({} where NO_PROXY names it),
        read once per scheme and host."""
        scheme, host = urlsplit(url)[:2]
        found = self._proxies_by_host.get((scheme, host))
        if found is None:
            found = get_environ_proxies(url)
            with self._lock:
                self._proxies_by_host[(scheme, host)] = found
        return found

    def pool_for(self, url: str) -> urllib3.HTTPConnectionPool:
        """The connection pool that requests to `url` go through (direct or by its proxy)."""
        proxy = select_proxy(url, self.environment_proxies(url))
        return self._manager(proxy, True, None).connection_from_url(url)

    def send(
        self, request: HttpRequest, *, proxies: Mapping[str, str] | None = None, **kwargs: Any
    ) -> HttpResponse:
        """Send `request` and answer azure-core's `HttpResponse`, read whole unless `stream`."""
        stream = bool(kwargs.pop("stream", False))
        timeout = urllib3.Timeout(
            connect=kwargs.pop("connection_timeout", self.connect_timeout),
            read=kwargs.pop("read_timeout", self.read_timeout),
        )
        verify = kwargs.pop("connection_verify", True)
        cert = kwargs.pop("connection_cert", None)
        if kwargs:
            raise TypeError(f"unexpected transport options: {', '.join(sorted(kwargs))}")
        if getattr(request, "files", None):
            raise TypeError("form uploads are not sent by this transport (Table calls have none)")
        proxy = select_proxy(
            request.url, {**self.environment_proxies(request.url), **(proxies or {})}
        )
        body, headers = _wire(request)
        try:
            manager = self._manager(proxy, True if verify is None else verify, cert)
            raw = manager.urlopen(
                request.method,
                request.url,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                timeout=timeout,
                preload_content=not stream,
                decode_content=True,
            )
        except (Urllib3Error, OSError, ValueError) as error:
            # OSError and ValueError: a proxy or certificate setting that cannot be used.
            raise _azure_error(error) from error
        # Not streamed: urllib3 read the body with the headers and the connection is back in
        # its pool.
        return PooledResponse(
            request=request, internal_response=raw, content=None if stream else raw.data
        )

    def _manager(self, proxy: str | None, verify: Any, cert: Any) -> urllib3.PoolManager:
        key = (proxy, verify, cert)
        manager = self._managers.get(key)
        if manager is None:
            with self._lock:
                manager = self._managers.get(key)
                if manager is None:
                    manager = self._managers[key] = self._new_manager(proxy, verify, cert)
        return manager

    def _new_manager(self, proxy: str | None, verify: Any, cert: Any) -> urllib3.PoolManager:
        tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED" if verify else "CERT_NONE"}
        if verify:
            bundle = verify if isinstance(verify, str) else self._ca_bundle or certifi.where()
            # As requests: a directory of hashed certificates, or one file of them.
            tls["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
        if cert:
            tls["cert_file"], tls["key_file"] = cert if isinstance(cert, tuple) else (cert, None)
            for path in filter(None, (tls["cert_file"], tls["key_file"])):
                if not os.path.isfile(path):
                    raise FileNotFoundError(f"client certificate file {path} does not exist")
        pools: dict[str, Any] = {"num_pools": 4, "maxsize": self.pool_size, "retries": False}
        if proxy is None:
            return urllib3.PoolManager(**pools, **tls)
        proxy = prepend_scheme_if_needed(proxy, "http")  # "proxy.corp:3128", as requests reads it
        user, password = get_auth_from_url(proxy)
        if proxy.lower().startswith("socks"):
            try:
                from urllib3.contrib.socks import SOCKSProxyManager
            except ImportError:  # PySocks is not installed
                raise ValueError("a SOCKS proxy needs the PySocks package") from None
            return SOCKSProxyManager(
                proxy, username=user or None, password=password or None, **pools, **tls
            )
        headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else {}
        return urllib3.ProxyManager(proxy, proxy_headers=headers, **pools, **tls)


class PooledResponse(HttpResponseImpl):
    """A urllib3 answer as azure-core's `HttpResponse` (and its older pipeline API: `body()`,
    `text()`, `parts()`), with `content` when the body came with the headers."""

    def __init__(
        self, *, request: HttpRequest, internal_response: Any, content: bytes | None = None
    ) -> None:
        headers = internal_response.headers
        super().__init__(
            request=request,
            internal_response=internal_response,
            status_code=internal_response.status,
            reason=internal_response.reason or "",
            headers=headers,
            content_type=headers.get("Content-Type"),
            block_size=BLOCK_SIZE,
            stream_download_generator=_download,
        )
        if content is not None:
            self._content = content
            self._set_read_checks()  # type: ignore[no-untyped-call]  # read and closed


def _download(
    pipeline: Any, response: PooledResponse, *, decompress: bool = True
) -> Iterator[bytes]:
    """A streamed answer's body in blocks. urllib3 puts the connection back in its pool once the
    body is read through; one that fails mid-way is closed, not pooled."""
    raw = response.internal_response
    try:
        yield from raw.stream(BLOCK_SIZE, decode_content=decompress)
    except (Urllib3Error, OSError) as error:
        raw.close()
        # The answer had begun: whatever failed, it failed while reading it.
        mapped = _azure_error(error)
        if type(mapped) is ServiceRequestError:
            mapped = ServiceResponseError(error, error=error)
        raise mapped from error


def _wire(request: HttpRequest) -> tuple[bytes | None, dict[str, str]]:
    """The body as bytes and the headers to send: as requests sends them, a text body is UTF-8
    with its Content-Length counted in bytes (azure-core counts characters), and a header whose
    value is None is left out."""
    headers = {k: v for k, v in request.headers.items() if v is not None}
    body = request.data
    if isinstance(body, str):
        body = body.encode("utf-8")
        for name in [k for k in headers if k.lower() == "content-length"]:
            headers[name] = str(len(body))
    return body, headers


def _azure_error(error: Exception) -> AzureError:
    """The azure-core error `RequestsTransport` raises for the same failure (a read that times
    out is a response timeout, and a body that will not decode a DecodeError, where requests
    raised more general ones)."""
    if isinstance(error, NewConnectionError):
        return ServiceRequestError(error, error=error)
    if isinstance(error, ConnectTimeoutError):
        return ServiceRequestTimeoutError(error, error=error)
    if isinstance(error, ReadTimeoutError):
        return ServiceResponseTimeoutError(error, error=error)
    if isinstance(error, BodyDecodeError):
        return DecodeError(error, error=error)
    if isinstance(error, ProtocolError):
        if any(isinstance(cause, IncompleteRead | HttpIncompleteRead) for cause in error.args):
            return IncompleteReadError(error, error=error)  # the body ended short
        # The connection dropped while the request or its answer was on it.
        return ServiceResponseError(error, error=error)
    # Refused by a proxy, TLS, or anything else before an answer: the request did not get through.
    return ServiceRequestError(error, error=error)
