"""The ImmyBot failures: `str()` of each is safe to log (no secret, no token, no body)."""

from __future__ import annotations


class ImmyError(Exception):
    """Base of every ImmyBot failure; `str()` is safe to log (no secret, no token, no body).

    `status` is the HTTP status ImmyBot answered, `code` Entra ID's error code, where known."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ImmyAuthError(ImmyError):
    """Entra ID refused the credentials, or ImmyBot refused the token."""


class ImmyUnavailable(ImmyError):
    """ImmyBot or Entra ID did not answer usefully within the retry cap."""


class ImmyAuthorityUnavailable(ImmyUnavailable):
    """msal could not read the Entra ID authority's configuration (an unknown tenant, or host)."""


class ImmyProtocolError(ImmyError):
    """ImmyBot answered with something the client cannot read."""
