"""Entra ID tokens for ImmyBot: msal (client credentials) through an httpx adapter.

msal is synchronous and talks HTTP through the client we give it (`MsalHttpClient`), so tests stay
offline and a loopback stand-in can play Entra ID. msal insists on https authorities; for a
loopback authority host (tests, `make run`) the adapter maps https://127.0.0.1:PORT back to plain
http. The application object is built lazily, on the first token, because its constructor fetches
the authority's OpenID configuration. Applications live in an `MsalApplications` registry, one per
identity with its token cache; the process-wide registry is owned by `shared.runtime.clients`.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from shared.immybot.errors import ImmyAuthError, ImmyAuthorityUnavailable, ImmyUnavailable
from shared.settings import is_loopback

# msal refreshes a client-credentials token with less than this many seconds left.
STALE_MARGIN_SECONDS = 300

if TYPE_CHECKING:
    import msal


@dataclass(slots=True)
class _Application:
    app: msal.ConfidentialClientApplication
    # One token request at a time per identity: callers arriving while one is in flight wait,
    # then find its token in msal's cache, instead of each asking Entra (a stampede of first
    # views or concurrent reads).
    lock: threading.Lock = field(default_factory=threading.Lock)


class MsalApplications:
    """msal applications keyed by identity, so clients of one identity share its token cache."""

    def __init__(self) -> None:
        self._apps: dict[tuple[str, str, str], _Application] = {}
        self._lock = threading.Lock()

    def get_or_build(
        self, key: tuple[str, str, str], build: Callable[[], msal.ConfidentialClientApplication]
    ) -> _Application:
        """The application for `key`, built by `build` the first time (one builder at a time)."""
        with self._lock:
            found = self._apps.get(key)
            if found is None:
                found = self._apps[key] = _Application(build())
            return found

    def clear(self) -> None:
        """Drop every application and its tokens (after a secret rotation, and in tests)."""
        with self._lock:
            self._apps.clear()


class MsalHttpClient:
    """The HTTP client msal calls (`post`, `get`, `close`), backed by httpx.

    `loopback_https` lists host:port pairs whose https URLs are really plain http (a local
    stand-in for Entra ID); nothing else is rewritten.
    """

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        timeout: float = 10.0,
        loopback_https: frozenset[str] = frozenset(),
    ) -> None:
        self._http = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._loopback = loopback_https

    def _url(self, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.netloc in self._loopback:
            return parts._replace(scheme="http").geturl()
        return url

    def post(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """POST as msal asks (form data arrives as a dict)."""
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if v is not None}
        return self._http.post(self._url(url), params=params, data=data, headers=headers)

    def get(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """GET as msal asks."""
        return self._http.get(self._url(url), params=params, headers=headers)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()


class EntraToken:
    """Client-credentials tokens for one identity and scope, cached and refreshed by msal."""

    def __init__(
        self,
        *,
        tenant_id: str,
        client_id: str,
        client_secret: SecretStr | str,
        scope: str,
        authority_host: str,
        timeout: float,
        msal_http: MsalHttpClient | None = None,
        applications: MsalApplications | None = None,
    ) -> None:
        self._client_id = client_id
        self._applications = applications or MsalApplications()
        self._secret = (
            client_secret if isinstance(client_secret, SecretStr) else SecretStr(client_secret)
        )
        self._scope = scope
        authority = urlsplit(authority_host.rstrip("/"))
        loopback = authority.scheme == "http" and is_loopback(authority.hostname)
        # msal accepts only https authorities: a loopback stand-in is named https and mapped back.
        self._authority = f"https://{authority.netloc}/{tenant_id}"
        self._msal_http = msal_http or MsalHttpClient(
            timeout=timeout,
            loopback_https=frozenset({authority.netloc}) if loopback else frozenset(),
        )
        self._app: _Application | None = None
        # The last token and the monotonic time it turns stale (msal's own five-minute margin),
        # so a call while it is fresh costs no hop to a worker thread for msal's cache.
        self._fresh: tuple[str, float] | None = None

    def _application(self) -> _Application:
        # One msal application (and so one token cache) per identity in the registry: short-lived
        # clients sharing a registry reuse the token instead of asking Entra each time.
        if self._app is None:
            key = (
                self._authority,
                self._client_id,
                hashlib.sha256(self._secret.get_secret_value().encode()).hexdigest(),
            )
            self._app = self._applications.get_or_build(key, self._build)
        return self._app

    def _build(self) -> msal.ConfidentialClientApplication:
        import msal

        try:
            return msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._secret.get_secret_value(),
                authority=self._authority,
                http_client=self._msal_http,
                # A tenant-specific authority needs no instance discovery round trip.
                instance_discovery=False,
            )
        except (ValueError, httpx.HTTPError) as error:
            raise ImmyAuthorityUnavailable(
                f"Entra ID authority {self._authority}: {type(error).__name__}"
            ) from None

    def _token_sync(self) -> str:
        application = self._application()
        with application.lock:
            # msal answers from its cache first, so a caller that waited gets the token the
            # one before it fetched.
            result = application.app.acquire_token_for_client(scopes=[self._scope])
        if "access_token" in result:
            token = str(result["access_token"])
            lifetime = result.get("expires_in")
            if isinstance(lifetime, int | float) and lifetime > STALE_MARGIN_SECONDS:
                self._fresh = (token, time.monotonic() + lifetime - STALE_MARGIN_SECONDS)
            return token
        code = str(result.get("error", "unknown_error"))[:60]
        # The description is Entra's own text (AADSTS code, trace ids): no secret, useful to admins.
        description = str(result.get("error_description", "")).split("\n")[0][:200]
        raise ImmyAuthError(
            f"Entra ID refused the ImmyBot token ({code}): {description}", code=code
        )

    async def token(self) -> str:
        """An access token; msal caches it and refreshes it before it expires."""
        fresh = self._fresh
        if fresh is not None and time.monotonic() < fresh[1]:
            return fresh[0]
        try:
            return await asyncio.to_thread(self._token_sync)
        except httpx.HTTPError as error:
            raise ImmyUnavailable(f"Entra ID token request: {type(error).__name__}") from None

    def forget_tokens(self) -> None:
        """Drop this identity's cached tokens (ImmyBot refused one)."""
        self._fresh = None
        if self._app is not None:
            self._app.app.remove_tokens_for_client()
