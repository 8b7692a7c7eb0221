"""The shared outgoing-call line and the owned connection pool of both vendor clients."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from shared.outbound.http import CallRecord, OwnsHttp, logged_call, open_http


async def _answer(call: CallRecord) -> str:
    call.status = 200
    call.retries = 1
    return "answer"


async def _fail(call: CallRecord) -> str:
    call.throttled = 2
    raise TimeoutError


def _lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "halo_immy.outgoing"]


async def test_logged_call_returns_the_answer_and_logs_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="halo_immy.outgoing")
    call = CallRecord()
    assert await logged_call("immybot", "GET", "/api/v1/computers/12", call, _answer(call)) == (
        "answer"
    )
    [line] = _lines(caplog)
    assert line["path"] == "/api/v1/computers/{id}"
    assert (line["status"], line["retries"], line["throttled"]) == (200, 1, 0)
    assert "error" not in line


async def test_logged_call_names_the_failure_and_raises_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="halo_immy.outgoing")
    call = CallRecord()
    with pytest.raises(TimeoutError):
        await logged_call("halopsa", "POST", "/api/Report", call, _fail(call))
    [line] = _lines(caplog)
    assert (line["service"], line["error"], line["throttled"]) == ("halopsa", "TimeoutError", 2)


async def test_an_owner_closes_its_pool_on_leaving_the_block() -> None:
    class Owner(OwnsHttp):
        def __init__(self) -> None:
            self._http = open_http("https://example.test", 5.0, httpx.MockTransport(_ok))

    async with Owner() as owner:
        assert not owner._http.is_closed
    assert owner._http.is_closed


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={})
