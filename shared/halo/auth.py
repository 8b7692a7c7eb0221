"""HaloPSA OAuth2 client-credentials tokens: the cached token and reading the token answer."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import httpx

from shared.halo.errors import HaloProtocolError

TOKEN_PATH = "/auth/token"  # noqa: S105 - a URL path
# Refresh a token this long before HaloPSA says it expires, so a request never leaves with a token
# that dies in flight.
TOKEN_EXPIRY_MARGIN_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and when (on the client's monotonic clock) to stop using it."""

    value: str
    token_type: str
    expires_at: float


class TokenCache:
    """Tokens shared by short-lived clients (one per tab view), keyed by who asked for what.

    Thread-safe and loop-free on purpose: each client still refreshes under its own asyncio lock.
    """

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, ...], Token] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, ...]) -> Token | None:
        """The cached token for `key`, if any (it may have expired: callers check)."""
        with self._lock:
            return self._tokens.get(key)

    def put(self, key: tuple[str, ...], token: Token | None) -> None:
        """Cache (or with None, forget) the token for `key`."""
        with self._lock:
            if token is None:
                self._tokens.pop(key, None)
            else:
                self._tokens[key] = token


def token_from_response(response: httpx.Response, now: float) -> Token:
    """The token in a successful token answer, expiring a margin before HaloPSA says it does."""
    try:
        body = response.json()
        value = body["access_token"]
        expires_in = float(body.get("expires_in") or 3600)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise HaloProtocolError(
            "POST", TOKEN_PATH, response.status_code, "the token answer has no access_token"
        ) from None
    if not isinstance(value, str) or not value:
        raise HaloProtocolError("POST", TOKEN_PATH, response.status_code, "empty access_token")
    lifetime = max(expires_in - TOKEN_EXPIRY_MARGIN_SECONDS, expires_in / 2)
    return Token(value, str(body.get("token_type") or "Bearer"), now + lifetime)


def oauth_code(response: httpx.Response) -> str | None:
    """The OAuth error code of an error answer (RFC 6749 5.2), or None when it has no usable one."""
    # Only the code is passed on: it is a fixed vocabulary, safe to log.
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if isinstance(code, str) and code.replace("_", "").isalnum() and len(code) <= 40:
        return code
    return None


def oauth_error(response: httpx.Response) -> str | None:
    """`token refused: <code>` from an OAuth error answer, or None when it has no usable code."""
    code = oauth_code(response)
    return f"token refused: {code}" if code else None
