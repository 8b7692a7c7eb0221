"""Sending HaloPSA requests: the budget, retries, 429 pauses, and one log line per call.

`HaloTransport.request` is the only place a HaloPSA request leaves; the client's reads and its
token requests all go through it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.halo.auth import Token
from shared.halo.errors import (
    HaloAuthError,
    HaloError,
    HaloNotFound,
    HaloOutOfTime,
    HaloProtocolError,
    HaloRateLimited,
    HaloReportError,
    HaloReportTimeout,
    HaloRequestError,
    HaloUnavailable,
)
from shared.outbound.budget import (
    THROTTLED_STATUS,
    TRANSIENT_STATUS,
    OutOfTime,
    RequestBudget,
    RetryPolicy,
    Sleep,
    parse_retry_after,
)
from shared.outbound.http import CallRecord, logged_call

GATEWAY_TIMEOUT = 504

log = logging.getLogger("halo_immy.halo")


@dataclass(slots=True)
class ClientStats:
    """Requests sent per resource (token requests under `auth/token`), retries made, 429s met,
    and recurring invoices listed without `lines` and so read by id."""

    requests: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    token_fetches: int = 0
    throttled: int = 0
    lines_fetched_by_id: int = 0

    @property
    def total_requests(self) -> int:
        """All HTTP requests sent, token requests included."""
        return sum(self.requests.values())


@dataclass(slots=True)
class _Call(CallRecord):
    """What one logical request met across its tries, transient failures counted apart."""

    failures: int = 0


class HaloTransport:
    """Sends requests for one HaloClient, sharing its budget, retry policy and stats."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        budget: RequestBudget | None,
        retry: RetryPolicy,
        sleep: Sleep,
        rng: random.Random,
        stats: ClientStats,
        current_token: Callable[[], Awaitable[Token]],
        drop_token: Callable[[Token], None],
    ) -> None:
        self._http = http
        self._budget = budget
        self._retry = retry
        self._sleep = sleep
        self._rng = rng
        self.stats = stats
        self._current_token = current_token
        self._drop_token = drop_token

    async def request(
        self,
        method: str,
        path: str,
        where: str,
        *,
        resource: str,
        params: Mapping[str, str] | None = None,
        data: Mapping[str, str] | None = None,
        json_body: Any = None,
        authorised: bool = False,
        deadline_is_final: bool = False,
    ) -> httpx.Response:
        """Send a request until it has an answer that retrying cannot change, and log the call.

        Every try draws on the budget. 429: pause (at least the policy's `backoff_429`) and slow
        the budget; 500/502/503/504, timeouts and connection errors: exponential back-off with
        jitter; 401 with a bearer token: refresh the token once. Raises HaloUnavailable or
        HaloRateLimited past the policy's caps; any other answer is returned as it is. With
        `deadline_is_final` a 504 or a read timeout raises HaloReportTimeout at once.
        """
        call = _Call()
        sending = self._tries(
            method,
            path,
            where,
            call,
            resource,
            params,
            data,
            json_body,
            authorised,
            deadline_is_final,
        )
        return await logged_call("halopsa", method, path, call, sending)

    async def write(self, method: str, path: str, *, resource: str, body: Any) -> httpx.Response:
        """Send one non-idempotent JSON write and log the call; the answer, whatever its status.

        Only what HaloPSA provably did not process is tried again: a 429 (refused before
        processing; the budget pauses and slows as for reads), a 401 once with a fresh token, and
        a connection that never opened. A timeout or a dropped connection after sending may follow
        a write that was (partly) applied: HaloUnavailable, never a second send.
        """
        call = _Call()
        sending = self._write_tries(method, path, call, resource, body)
        return await logged_call("halopsa", method, path, call, sending)

    async def _write_tries(
        self, method: str, path: str, call: _Call, resource: str, body: Any
    ) -> httpx.Response:
        auth_refreshed = False
        while True:
            token = await self._current_token()
            await self._acquire(method, path)
            self.stats.requests[resource] += 1
            try:
                response = await self._http.request(
                    method,
                    path,
                    json=body,
                    headers={"Authorization": f"{token.token_type} {token.value}"},
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as failure:
                call.status = None  # the request never reached HaloPSA: safe to send again
                await self._after_transient(method, path, call, type(failure).__name__, None)
                continue
            except (httpx.TimeoutException, httpx.TransportError) as failure:
                call.status = None
                raise HaloUnavailable(
                    method, path, None, f"{type(failure).__name__}: the write may have been applied"
                ) from None
            call.status = response.status_code
            if response.status_code == 401 and not auth_refreshed:
                auth_refreshed = True
                self._drop_token(token)
                continue
            if response.status_code == THROTTLED_STATUS:
                await self._after_throttled(method, path, call, response)
                continue
            return response

    async def _tries(
        self,
        method: str,
        path: str,
        where: str,
        call: _Call,
        resource: str,
        params: Mapping[str, str] | None,
        data: Mapping[str, str] | None,
        json_body: Any,
        authorised: bool,
        deadline_is_final: bool = False,
    ) -> httpx.Response:
        auth_refreshed = False
        while True:
            token = await self._current_token() if authorised else None
            headers = {"Authorization": f"{token.token_type} {token.value}"} if token else None
            await self._acquire(method, where)
            self.stats.requests[resource] += 1
            try:
                response = await self._http.request(
                    method, path, params=params, headers=headers, data=data, json=json_body
                )
            except (httpx.TimeoutException, httpx.TransportError) as failure:
                call.status = None
                if deadline_is_final and isinstance(failure, httpx.ReadTimeout):
                    raise HaloReportTimeout(method, where, None, "read timeout") from None
                await self._after_transient(method, where, call, type(failure).__name__, None)
                continue
            status = response.status_code
            call.status = status
            if deadline_is_final and status == GATEWAY_TIMEOUT:
                # Halo's 504 on a report is its gateway deadline, not a blip: asked again, the
                # same SQL meets the same deadline (report-api.notes.md, "Errors").
                raise HaloReportTimeout(method, where, status, "gateway deadline")
            if status == 401 and token is not None and not auth_refreshed:
                # The token may have been revoked or expired early: refresh once, then give up.
                auth_refreshed = True
                self._drop_token(token)
                continue
            if status == THROTTLED_STATUS:
                await self._after_throttled(method, where, call, response)
                continue
            if status in TRANSIENT_STATUS:
                await self._after_transient(method, where, call, f"HTTP {status}", response)
                continue
            return response

    async def _acquire(self, method: str, where: str) -> None:
        """Take a request from the budget; HaloOutOfTime when it could only go past the deadline."""
        if self._budget is None:
            return
        try:
            await self._budget.acquire()
        except OutOfTime as late:
            raise HaloOutOfTime(method, where, None, str(late)) from None

    async def _after_transient(
        self, method: str, where: str, call: _Call, what: str, response: httpx.Response | None
    ) -> None:
        """Back off after a transient failure, or raise HaloUnavailable past the attempt cap."""
        call.failures += 1
        status = response.status_code if response is not None else None
        if call.failures >= self._retry.max_attempts:
            detail = (
                f"{what} after {call.failures} attempts"
                if response is None
                else f"still failing after {call.failures} attempts"
            )
            raise HaloUnavailable(method, where, status, detail)
        retry_after = self._retry_after(method, where, response, HaloUnavailable)
        delay = max(retry_after or 0.0, self._retry.backoff(call.failures, self._rng))
        log.warning(
            "HaloPSA %s %s: %s, retry %d/%d in %.1fs",
            method,
            where,
            what,
            call.failures,
            self._retry.max_attempts - 1,
            delay,
        )
        call.retries += 1
        self.stats.retries += 1
        await self._sleep(delay)

    async def _after_throttled(
        self, method: str, where: str, call: _Call, response: httpx.Response
    ) -> None:
        """Pause after a 429 and slow the budget, or raise HaloRateLimited past the cap."""
        call.throttled += 1
        self.stats.throttled += 1
        if call.throttled > self._retry.max_throttled:
            raise HaloRateLimited(
                method, where, THROTTLED_STATUS, f"still rate limited after {call.throttled} 429s"
            )
        if self._budget is not None:
            # A pause that outlasts the run's time limit ends the run as resumable, whatever the
            # cap on Retry-After: the next run continues from the staged pages.
            asked = parse_retry_after(response.headers.get("Retry-After"))
            try:
                self._budget.check_wait(max(self._retry.backoff_429, asked or 0.0))
            except OutOfTime as late:
                raise HaloOutOfTime(method, where, THROTTLED_STATUS, str(late)) from None
        # HaloPSA sends no Retry-After; one that is present is honoured when it is longer.
        retry_after = self._retry_after(method, where, response, HaloRateLimited)
        wait = max(self._retry.backoff_429, retry_after or 0.0)
        call.retries += 1
        self.stats.retries += 1
        if self._budget is None:
            log.warning("HaloPSA %s %s: HTTP 429, retry in %.1fs", method, where, wait)
            await self._sleep(wait)
            return
        # The limit is per instance, so every request of the run pauses, not only this one: the
        # next `acquire` waits out the pause.
        self._budget.throttled(wait)
        log.warning(
            "HaloPSA %s %s: HTTP 429, every request pauses %.1fs, budget now %.1f/min",
            method,
            where,
            wait,
            self._budget.per_minute,
        )

    def _retry_after(
        self,
        method: str,
        where: str,
        response: httpx.Response | None,
        error_type: type[HaloError],
    ) -> float | None:
        if response is None:
            return None
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        if retry_after is not None and retry_after > self._retry.max_retry_after:
            raise error_type(
                method,
                where,
                response.status_code,
                f"asked to wait {retry_after:.0f}s, more than the "
                f"{self._retry.max_retry_after:.0f}s this client may wait",
            )
        return retry_after


def raise_for_status(method: str, where: str, response: httpx.Response) -> None:
    """Raise the typed HaloError a non-2xx answer stands for; return on 2xx."""
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = response.reason_phrase or "error"
    if status in (401, 403):
        raise HaloAuthError(
            method,
            where,
            status,
            f"{reason}: check the API application's permissions and the agent it logs in as",
        )
    if status == 404:
        raise HaloNotFound(method, where, status, reason)
    if 400 <= status < 500:
        raise HaloRequestError(method, where, status, reason)
    raise HaloUnavailable(method, where, status, reason)


def report_rows(path: str, response: httpx.Response) -> list[Mapping[str, Any]]:
    """The rows of a `POST /api/Report` answer; HaloReportError when HaloPSA could not run the SQL
    (it says so with HTTP 200), HaloProtocolError when the answer has no rows list."""
    raise_for_status("POST", path, response)
    try:
        body = response.json()
    except ValueError:
        raise HaloProtocolError("POST", path, response.status_code, "not JSON") from None
    # One object, or (some clients say) an array of one: read both.
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    report = body.get("report") if isinstance(body, Mapping) else None
    error = (report if isinstance(report, Mapping) else {}).get("load_error") or (
        body.get("load_error") if isinstance(body, Mapping) else None
    )
    if error:
        # Halo's message names the SQL problem (a column, a keyword), never row data.
        raise HaloReportError("POST", path, 200, f"report failed: {str(error)[:300]}")
    rows = report.get("rows") if isinstance(report, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(row, Mapping) for row in rows):
        raise HaloProtocolError("POST", path, 200, "the answer has no 'report.rows' list")
    return rows
