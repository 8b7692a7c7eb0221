"""A HaloClient's bearer tokens: taken from the shared cache, refreshed once for all waiters, and
requested with the client-credentials grant through the client's transport."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from shared.halo.auth import (
    TOKEN_PATH,
    Token,
    TokenCache,
    oauth_code,
    oauth_error,
    token_from_response,
)
from shared.halo.errors import HaloAuthError
from shared.halo.transport import HaloTransport, raise_for_status
from shared.outbound.budget import Clock


class TokenSource:
    """The token of one (base URL, client id, tenant, scope): cached, and fetched when expired."""

    def __init__(
        self,
        cache: TokenCache,
        key: tuple[str, ...],
        clock: Clock,
        fetch: Callable[[], Awaitable[Token]],
    ) -> None:
        self._cache = cache
        self._key = key
        self._clock = clock
        self._fetch = fetch
        self._lock = asyncio.Lock()

    async def current(self) -> Token:
        """A token that has not expired, fetched only when the cache has none."""
        token = self._cache.get(self._key)
        if token is not None and self._clock() < token.expires_at:
            return token
        async with self._lock:
            # Whoever held the lock before us may have refreshed already: one refresh for all.
            token = self._cache.get(self._key)
            if token is not None and self._clock() < token.expires_at:
                return token
            token = await self._fetch()
            self._cache.put(self._key, token)
            return token

    def drop(self, token: Token) -> None:
        """Forget `token` (HaloPSA refused it), unless another has replaced it already."""
        if self._cache.get(self._key) is token:
            self._cache.put(self._key, None)


async def request_token(
    transport: HaloTransport, form: Mapping[str, str], tenant: str | None, clock: Clock
) -> Token:
    """`POST /auth/token` with the client-credentials `form`; HaloAuthError when refused."""
    params = {"tenant": tenant} if tenant else None
    response = await transport.request(
        "POST", TOKEN_PATH, TOKEN_PATH, resource="auth/token", params=params, data=form
    )
    if response.status_code in (400, 401, 403):
        raise HaloAuthError(
            "POST",
            TOKEN_PATH,
            response.status_code,
            oauth_error(response) or "token refused",
            code=oauth_code(response),
        )
    raise_for_status("POST", TOKEN_PATH, response)
    transport.stats.token_fetches += 1
    return token_from_response(response, clock())
