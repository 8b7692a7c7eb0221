"""A fake HaloPSA for respx unit tests: its base URL, tokens, a clock that moves only when slept on,
and a client wired to them."""

from __future__ import annotations

import asyncio
import random

import httpx

from shared.halo.client import HaloClient
from shared.outbound.budget import RetryPolicy

BASE = "https://msp.halopsa.test"
SECRET = "s3cr3t-client-secret-value"
TOKEN_A = "token-aaaaaaaaaaaaaaaa"
TOKEN_B = "token-bbbbbbbbbbbbbbbb"


class FakeClock:
    """A monotonic clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def make_client(clock: FakeClock, **kwargs) -> HaloClient:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0))
    return HaloClient(
        BASE,
        "client-id-1",
        SECRET,
        page_size=kwargs.pop("page_size", 10),
        sleep=kwargs.pop("sleep", clock.sleep),
        clock=clock,
        rng=random.Random(7),
        **kwargs,
    )


def token_route(mock, *tokens: str, expires_in: int = 3600):
    answers = iter(tokens)

    async def answer(request: httpx.Request) -> httpx.Response:
        # Yield to the loop like a real network call, so concurrent callers really overlap.
        await asyncio.sleep(0)
        body = {"access_token": next(answers), "token_type": "Bearer", "expires_in": expires_in}
        return httpx.Response(200, json=body)

    return mock.post("/auth/token").mock(side_effect=answer)
