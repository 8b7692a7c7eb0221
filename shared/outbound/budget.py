"""Pacing of HaloPSA requests: the retry policy and the request budget shared by a run.

Hosted HaloPSA allows 300 requests per rolling 5 minutes per instance (DESIGN.md section 8); the
budget keeps a sync under that, and the retry policy spaces out retries of transient failures.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

# What ImmyBot's client retries. HaloPSA's client keeps 429 apart (it slows the whole budget down)
# and also retries 500, which hosted HaloPSA sends transiently.
RETRYABLE_STATUS = frozenset({429, 502, 503, 504})
TRANSIENT_STATUS = frozenset({500, 502, 503, 504})
THROTTLED_STATUS = 429
# HaloPSA sends no Retry-After with its 429s; its window is 5 minutes, so a short pause only earns
# another 429. DESIGN.md section 8: back off at least 30 s.
DEFAULT_BACKOFF_429_SECONDS = 30.0
# Sleeping exactly the computed wait can land a rounding error short of it; without a tolerance a
# clock that moves only by the sleeps (tests) would be asked for ever smaller waits.
_EPSILON = 1e-9


class OutOfTime(Exception):
    """The budget would let the next request go only after its deadline (`RequestBudget.stop_at`).

    Raised instead of waiting: a run out of time stops with what it has (staged pages) and the
    next run continues, rather than be killed by the host mid-write.
    """

    def __init__(self, wait: float, remaining: float) -> None:
        self.wait = wait
        self.remaining = remaining
        super().__init__(
            f"the next request could go in {wait:.0f}s, the run has {max(0.0, remaining):.0f}s left"
        )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts and back-off per request.

    `max_attempts` bounds the tries of a request that meets transient failures (500/502/503/504,
    timeouts, connection errors), the first try included; `max_throttled` bounds the 429s one
    request may meet on top of that, so a request is sent at most `max_attempts + max_throttled`
    times. After a 429 the wait is at least `backoff_429` (or a longer Retry-After, up to
    `max_retry_after`).
    """

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 120.0
    max_throttled: int = 8
    backoff_429: float = DEFAULT_BACKOFF_429_SECONDS

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential back-off with jitter for the given (1-based) failed attempt."""
        ceiling: float = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        # Equal jitter: always wait at least half, so retries spread without collapsing to zero.
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RequestBudget:
    """A token bucket shared by every call of a run, so a sync stays under HaloPSA's rate limit.

    Adaptive: `throttled` (a 429) halves the rate, down to `min_share` of the configured one, and
    pauses every caller; then each `recover_seconds` without a 429 gives back `recover_share` of
    the configured rate (additive increase), so a budget set above what the instance allows
    settles below it instead of failing the run.
    """

    def __init__(
        self,
        per_minute: float,
        burst: int | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        min_share: float = 1 / 64,
        recover_share: float = 0.1,
        recover_seconds: float = 60.0,
    ) -> None:
        if per_minute <= 0:
            raise ValueError("per_minute must be positive")
        if not 0 < min_share <= 1 or not 0 < recover_share <= 1 or recover_seconds <= 0:
            raise ValueError("min_share and recover_share must be in (0, 1], recover_seconds > 0")
        self.configured_rate = per_minute / 60.0
        self.rate = self.configured_rate
        self.min_rate = self.configured_rate * min_share
        self._recover_step = self.configured_rate * recover_share
        self._recover_seconds = recover_seconds
        self.capacity = float(burst if burst is not None else max(1, min(20, int(per_minute / 6))))
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._updated = clock()
        self._rate_changed = self._updated
        self._paused_until = -math.inf
        self._lock = asyncio.Lock()
        self.waited_seconds = 0.0
        self.throttles = 0
        self._deadline: float | None = None

    def stop_at(self, seconds: float | None) -> None:
        """From now on refuse (OutOfTime) any request that could only go `seconds` from now or
        later, on the budget's clock; None lifts the deadline."""
        self._deadline = None if seconds is None else self._clock() + seconds

    def remaining(self) -> float | None:
        """Seconds left before the deadline, on the budget's clock; None without one."""
        return None if self._deadline is None else self._deadline - self._clock()

    def check_wait(self, wait: float) -> None:
        """Raise OutOfTime if a pause of `wait` seconds from now would end past the deadline."""
        left = self.remaining()
        if left is not None and wait > left:
            raise OutOfTime(wait, left)

    @property
    def per_minute(self) -> float:
        """The rate in force now, in requests per minute (lower than configured after a 429)."""
        return self.rate * 60.0

    async def acquire(self) -> None:
        """Take one request from the budget, waiting until one is available."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until - _EPSILON:
                    # Re-checked after the sleep: another 429 may have lengthened the pause.
                    wait = self._paused_until - now
                else:
                    self._refill(now)
                    self._recover(now)
                    if self._tokens >= 1 - _EPSILON:
                        self._tokens = max(0.0, self._tokens - 1)
                        return
                    wait = (1 - self._tokens) / self.rate
                self.check_wait(wait)  # a pause or the pace past the deadline: stop, not wait
                self.waited_seconds += wait
                await self._sleep(wait)

    def throttled(self, wait: float) -> bool:
        """Record a 429: pause every caller for `wait` seconds and halve the rate.

        Requests already in flight when the first 429 came back tend to be refused too; their
        429s fall inside the pause and lengthen it but halve nothing. True if the rate was halved.
        """
        now = self._clock()
        halve = now >= self._paused_until
        self._refill(now)
        if halve:
            self.throttles += 1
            self.rate = max(self.min_rate, self.rate / 2)
            self._rate_changed = now
        end = now + max(0.0, wait)
        if end > self._paused_until:
            self._paused_until = end
            # One request may leave when the pause ends (the retry); the rest follow at the rate.
            self._tokens = 1.0
            self._updated = end
            self._rate_changed = max(self._rate_changed, end)
        return halve

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
        self._updated = max(self._updated, now)

    def _recover(self, now: float) -> None:
        if self.rate >= self.configured_rate:
            return
        steps = math.floor((now - self._rate_changed) / self._recover_seconds)
        if steps > 0:
            self.rate = min(self.configured_rate, self.rate + steps * self._recover_step)
            self._rate_changed += steps * self._recover_seconds


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if absent."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
