"""The ImmyBot failures: `str()` of each is safe to log (no secret, no token, no body)."""

from __future__ import annotations


class ImmyError(Exception):
    """Base of every ImmyBot failure; `str()` is safe to log (no secret, no token, no body)."""


class ImmyAuthError(ImmyError):
    """Entra ID refused the credentials, or ImmyBot refused the token."""


class ImmyUnavailable(ImmyError):
    """ImmyBot or Entra ID did not answer usefully within the retry cap."""


class ImmyProtocolError(ImmyError):
    """ImmyBot answered with something the client cannot read."""
