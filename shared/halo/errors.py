"""The HaloPSA client's typed errors.

Their text carries the method, the path and the status, never the client secret, the token or a
response body (bodies hold customer data, and a token endpoint may echo what it was sent).
"""

from __future__ import annotations


class HaloError(Exception):
    """Base of every HaloPSA failure. `str()` is safe to log."""

    def __init__(
        self, method: str, path: str, status: int | None, detail: str, code: str | None = None
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.code = code  # HaloPSA's OAuth error code, for a refused token
        status_text = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"HaloPSA {method} {path}: {status_text}: {detail}")


class HaloAuthError(HaloError):
    """HaloPSA refused the credentials or the token (401/403, or the token endpoint said no)."""


class HaloUnavailable(HaloError):
    """HaloPSA did not answer usefully (5xx, timeouts, connection errors) within the retry cap."""


class HaloRateLimited(HaloError):
    """HaloPSA kept answering 429 past the retry cap, or asked to wait longer than we may."""


class HaloOutOfTime(HaloError):
    """The run's time limit came before HaloPSA would take the next request (the budget's pace, or
    a 429's Retry-After longer than the time left): the run stops as resumable, not failed."""


class HaloNotFound(HaloError):
    """The record asked for does not exist (404)."""


class HaloRequestError(HaloError):
    """HaloPSA rejected the request (a 4xx other than 401/403/404/429)."""


class HaloProtocolError(HaloError):
    """HaloPSA answered with something the client cannot read (not JSON, missing list, no end)."""


class HaloReportError(HaloRequestError):
    """HaloPSA could not run a report's SQL (HTTP 200 with `report.load_error`)."""


class HaloReportTimeout(HaloUnavailable):
    """A report ran past HaloPSA's gateway deadline (504 or a read timeout). Sending the same SQL
    again meets the same deadline, so it is not retried: the caller asks for less."""
