"""Unit tests of the HaloPSA client against respx: tokens, paging, retries, and secret hygiene."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from email.utils import format_datetime

import httpx
import pytest

from shared.halo.client import HaloClient
from shared.halo.errors import (
    HaloAuthError,
    HaloNotFound,
    HaloOutOfTime,
    HaloProtocolError,
    HaloRateLimited,
    HaloUnavailable,
)
from shared.halo.paging import gather_or_cancel
from shared.outbound.budget import OutOfTime, RequestBudget, RetryPolicy, parse_retry_after
from shared.settings import load_settings
from tests.halo.fakes import BASE, SECRET, TOKEN_A, TOKEN_B, make_client, token_route


def paged(records: list[dict], key: str, *, record_count: int | None = None, calls=None):
    """A side effect that pages `records` the way HaloPSA does, optionally lying about the count."""

    def answer(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        assert params["pageinate"] == "true"
        size, number = int(params["page_size"]), int(params["page_no"])
        if calls is not None:
            calls.append(number)
        chunk = records[(number - 1) * size : number * size]
        total = len(records) if record_count is None else record_count
        return httpx.Response(200, json={"record_count": total, key: chunk})

    return answer


def clients(n: int) -> list[dict]:
    return [{"id": i, "name": f"Client {i}", "inactive": False} for i in range(1, n + 1)]


# -- tokens -------------------------------------------------------------------------------------


async def test_token_request_sends_client_credentials_form_and_tenant(mock, clock):
    tokens = token_route(mock, TOKEN_A)
    mock.get("/api/Tickets/5").respond(json={"id": 5, "summary": "Printer"})
    async with make_client(clock, tenant="yourmsp", scope="read:tickets") as halo:
        ticket = await halo.ticket(5)
    assert ticket.summary == "Printer"
    sent = tokens.calls.last.request
    assert sent.url.params["tenant"] == "yourmsp"
    form = httpx.QueryParams(sent.content.decode())
    assert dict(form) == {
        "grant_type": "client_credentials",
        "client_id": "client-id-1",
        "client_secret": SECRET,
        "scope": "read:tickets",
    }
    assert mock.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN_A}"


async def test_token_is_cached_until_shortly_before_expiry(mock, clock):
    tokens = token_route(mock, TOKEN_A, TOKEN_B, expires_in=3600)
    route = mock.get("/api/Tickets/1").respond(json={"id": 1})
    async with make_client(clock) as halo:
        await halo.ticket(1)
        clock.now += 3600 - 61  # still inside the margin of 60 s
        await halo.ticket(1)
        assert tokens.call_count == 1
        clock.now += 2
        await halo.ticket(1)
    assert tokens.call_count == 2
    auth = [c.request.headers["Authorization"] for c in route.calls]
    assert auth == [f"Bearer {TOKEN_A}", f"Bearer {TOKEN_A}", f"Bearer {TOKEN_B}"]


async def test_concurrent_callers_share_one_token_refresh(mock, clock):
    tokens = token_route(mock, TOKEN_A, TOKEN_B)
    mock.get(url__regex=r"/api/Tickets/\d+").mock(
        side_effect=lambda request: httpx.Response(
            200, json={"id": int(request.url.path.rsplit("/", 1)[1])}
        )
    )
    async with make_client(clock) as halo:
        got = await asyncio.gather(*(halo.ticket(i) for i in range(1, 21)))
    assert [t.id for t in got] == list(range(1, 21))
    assert tokens.call_count == 1


async def test_401_refreshes_the_token_once_and_retries(mock, clock):
    tokens = token_route(mock, TOKEN_A, TOKEN_B)

    def answer(request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] == f"Bearer {TOKEN_A}":
            return httpx.Response(401)
        return httpx.Response(200, json={"id": 9, "summary": "ok"})

    mock.get("/api/Tickets/9").mock(side_effect=answer)
    async with make_client(clock) as halo:
        ticket = await halo.ticket(9)
    assert ticket.id == 9
    assert tokens.call_count == 2


async def test_concurrent_401s_cause_a_single_refresh(mock, clock):
    tokens = token_route(mock, TOKEN_A, TOKEN_B, "token-never-needed")
    revoked = False
    refused = 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal refused
        await asyncio.sleep(0)  # let the other callers send with the same token
        if revoked and request.headers["Authorization"] == f"Bearer {TOKEN_A}":
            refused += 1
            return httpx.Response(401)
        return httpx.Response(200, json={"id": int(request.url.path.rsplit("/", 1)[1])})

    mock.get(url__regex=r"/api/Tickets/\d+").mock(side_effect=answer)
    async with make_client(clock) as halo:
        await halo.ticket(99)  # caches TOKEN_A
        revoked = True  # HaloPSA revokes it while the client still holds it
        got = await asyncio.gather(*(halo.ticket(i) for i in range(1, 11)))
    assert [t.id for t in got] == list(range(1, 11))
    assert refused == 10  # all ten were refused with the revoked token...
    assert tokens.call_count == 2  # ...and shared one refresh


async def test_second_401_gives_up_with_auth_error(mock, clock):
    tokens = token_route(mock, TOKEN_A, TOKEN_B)
    api = mock.get("/api/Client").respond(401)
    async with make_client(clock) as halo:
        with pytest.raises(HaloAuthError) as caught:
            await halo.clients()
    assert tokens.call_count == 2
    assert api.call_count == 2
    assert "GET /api/Client page 1: HTTP 401" in str(caught.value)


async def test_refused_credentials_name_the_oauth_error_but_not_the_secret(mock, clock):
    mock.post("/auth/token").respond(401, json={"error": "invalid_client", "echo": SECRET})
    async with make_client(clock) as halo:
        with pytest.raises(HaloAuthError) as caught:
            await halo.ticket(1)
    assert "invalid_client" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_token_answer_without_access_token_is_a_protocol_error(mock, clock):
    mock.post("/auth/token").respond(200, json={"token_type": "Bearer"})
    async with make_client(clock) as halo:
        with pytest.raises(HaloProtocolError, match="no access_token"):
            await halo.ticket(1)


# -- paging ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "expected_pages"),
    [
        (0, 1),  # empty list: one empty page
        (7, 1),  # one short page
        (25, 3),  # 10 + 10 + 5
        (30, 4),  # exact multiple: the fourth, empty page proves the end
    ],
)
async def test_paging_reads_every_record_once(mock, clock, total, expected_pages):
    token_route(mock, TOKEN_A)
    calls: list[int] = []
    mock.get("/api/Client").mock(side_effect=paged(clients(total), "clients", calls=calls))
    async with make_client(clock) as halo:
        listing = await halo.clients()
    assert [c.id for c in listing.records] == list(range(1, total + 1))
    assert sorted(calls) == list(range(1, expected_pages + 1))
    assert listing.pages == expected_pages
    assert halo.stats.requests["Client"] == expected_pages


async def test_paging_sends_halo_parameters(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/RecurringInvoice").respond(json={"record_count": 0, "invoices": []})
    async with make_client(clock) as halo:
        await halo.recurring_invoices()
    params = route.calls.last.request.url.params
    assert params["pageinate"] == "true"
    assert params["page_size"] == "10"
    assert params["page_no"] == "1"
    assert params["includelines"] == "true"
    assert params["includeinactive"] == "true"


async def test_record_count_lying_low_does_not_lose_records(mock, clock):
    token_route(mock, TOKEN_A)
    calls: list[int] = []
    data = clients(47)
    mock.get("/api/Client").mock(side_effect=paged(data, "clients", record_count=10, calls=calls))
    async with make_client(clock) as halo:
        listing = await halo.clients()
    assert [c.id for c in listing.records] == list(range(1, 48))
    assert sorted(calls) == [1, 2, 3, 4, 5]


async def test_record_count_lying_high_stops_at_the_first_short_page(mock, clock):
    token_route(mock, TOKEN_A)
    calls: list[int] = []
    mock.get("/api/Client").mock(
        side_effect=paged(clients(15), "clients", record_count=100_000, calls=calls)
    )
    async with make_client(clock, max_concurrency=3, max_pages=20_000) as halo:
        listing = await halo.clients()
    assert len(listing.records) == 15
    # Page 2 is short; at most the pages already in flight beside it were asked for.
    assert len(calls) <= 1 + 3


async def test_record_count_implying_too_many_pages_is_refused(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Client").mock(side_effect=paged(clients(20), "clients", record_count=10**9))
    async with make_client(clock, max_pages=50) as halo:
        with pytest.raises(HaloProtocolError, match="over the cap"):
            await halo.clients()


async def test_a_server_that_never_ends_is_cut_off(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").mock(
        side_effect=lambda request: httpx.Response(200, json={"clients": clients(10)})
    )
    async with make_client(clock, max_pages=6) as halo:
        with pytest.raises(HaloProtocolError, match="more than 6 full pages"):
            await halo.clients()
    assert route.call_count == 6


async def test_endpoint_that_ignores_paging_is_read_in_one_request(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Item").respond(
        json={"items": [{"id": i, "name": "x"} for i in range(1, 31)]}
    )
    async with make_client(clock) as halo:
        listing = await halo.items()
    assert len(listing.records) == 30
    assert route.call_count == 1


async def test_duplicates_across_pages_are_dropped_and_counted(mock, clock):
    token_route(mock, TOKEN_A)
    data = clients(25)
    # A record inserted at the front while paging shifts record 10 onto page 2 as well.
    pages = {1: data[0:10], 2: data[9:19], 3: data[19:25]}
    mock.get("/api/Client").mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={"record_count": 25, "clients": pages[int(request.url.params["page_no"])]},
        )
    )
    async with make_client(clock) as halo:
        listing = await halo.clients()
    assert [c.id for c in listing.records] == list(range(1, 26))
    assert listing.duplicates == 1


async def test_pages_after_the_first_are_fetched_concurrently_within_the_bound(mock, clock):
    token_route(mock, TOKEN_A)
    data = clients(95)
    in_flight = 0
    peak = 0
    gate = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        number = int(request.url.params["page_no"])
        if number > 1:
            in_flight += 1
            peak = max(peak, in_flight)
            if peak >= 3:
                gate.set()
            await gate.wait()  # hold pages open until the bound is reached
            in_flight -= 1
        chunk = data[(number - 1) * 10 : number * 10]
        return httpx.Response(200, json={"record_count": 95, "clients": chunk})

    mock.get("/api/Client").mock(side_effect=answer)
    async with make_client(clock, max_concurrency=3) as halo:
        listing = await asyncio.wait_for(halo.clients(), timeout=10)
    assert len(listing.records) == 95
    assert peak == 3


async def test_missing_list_key_and_non_json_are_protocol_errors(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Site").respond(json={"record_count": 3, "something": []})
    mock.get("/api/Item").respond(200, text="<html>maintenance</html>")
    async with make_client(clock) as halo:
        with pytest.raises(HaloProtocolError, match="no 'sites' list"):
            await halo.sites()
        with pytest.raises(HaloProtocolError, match="not JSON"):
            await halo.items()


async def test_invalid_records_are_rejected_with_reasons_and_the_rest_kept(mock, clock):
    token_route(mock, TOKEN_A)
    raw = [
        {"id": 1, "client_id": 4, "contracttype_name": "Managed Security"},
        {"id": 2, "client_id": None, "contracttype_name": "Managed Security"},
        {"id": 3, "client_id": 5, "start_date": "not-a-date"},
        {"id": 4, "client_id": 6, "end_date": "0001-01-01T00:00:00"},
    ]
    mock.get("/api/ClientContract").respond(json={"record_count": 4, "contracts": raw})
    async with make_client(clock) as halo:
        listing = await halo.contracts()
    assert [c.id for c in listing.records] == [1, 4]
    assert listing.records[1].end_date is None
    assert [(r.record_id, r.reason.split(":")[0]) for r in listing.rejects] == [
        ("2", "client_id"),
        ("3", "start_date"),
    ]


async def test_unknown_ticket_is_not_found(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Tickets/404").respond(404)
    async with make_client(clock) as halo:
        with pytest.raises(HaloNotFound, match="GET /api/Tickets/404: HTTP 404"):
            await halo.ticket(404)


# -- retries and budget --------------------------------------------------------------------------


async def test_retry_after_is_honoured(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Tickets/1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}),
            httpx.Response(503, headers={"Retry-After": "2"}),
            httpx.Response(200, json={"id": 1}),
        ]
    )
    async with make_client(clock) as halo:
        await halo.ticket(1)
    assert route.call_count == 3
    assert clock.sleeps[0] >= 7
    assert clock.sleeps[1] >= 2
    assert halo.stats.retries == 2


def test_retry_after_accepts_seconds_and_http_dates():
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after("30") == 30
    assert parse_retry_after(format_datetime(now + timedelta(seconds=45), usegmt=True), now) == 45
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_transient_errors_give_up_after_the_attempt_cap(mock, clock, status):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").respond(status)
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable) as caught:
            await halo.clients()
    assert route.call_count == 4
    assert f"GET /api/Client page 1: HTTP {status}" in str(caught.value)
    assert "still failing after 4 attempts" in str(caught.value)
    assert len(clock.sleeps) == 3
    # Exponential: each wait's ceiling doubles (0.1, 0.2, 0.4), equal jitter keeps at least half.
    for attempt, slept in enumerate(clock.sleeps, start=1):
        ceiling = 0.1 * 2 ** (attempt - 1)
        assert ceiling / 2 <= slept <= ceiling


async def test_429s_give_up_after_their_own_cap(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").respond(429)
    retry = RetryPolicy(max_attempts=2, max_throttled=3, backoff_429=30)
    async with make_client(clock, retry=retry) as halo:
        with pytest.raises(HaloRateLimited, match="HTTP 429: still rate limited after 4 429s"):
            await halo.clients()
    assert route.call_count == 4  # the first try and three retries, whatever max_attempts says
    assert clock.sleeps == [30, 30, 30]
    assert halo.stats.throttled == 4


async def test_retry_after_longer_than_allowed_fails_fast(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").respond(429, headers={"Retry-After": "3600"})
    async with make_client(clock) as halo:
        with pytest.raises(HaloRateLimited, match="asked to wait 3600s"):
            await halo.clients()
    assert route.call_count == 1
    assert clock.sleeps == []


async def test_500_then_200_succeeds(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(200, json={"record_count": 2, "clients": clients(2)}),
        ]
    )
    async with make_client(clock) as halo:
        listing = await halo.clients()
    assert [c.id for c in listing.records] == [1, 2]
    assert route.call_count == 2
    assert halo.stats.retries == 1
    assert len(clock.sleeps) == 1


async def test_five_500s_fail_with_a_clear_error_after_the_default_attempts(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").respond(500)
    async with make_client(clock, retry=RetryPolicy(base_delay=0.1)) as halo:
        with pytest.raises(HaloUnavailable) as caught:
            await halo.clients()
    assert route.call_count == 5
    assert str(caught.value) == (
        "HaloPSA GET /api/Client page 1: HTTP 500: still failing after 5 attempts"
    )
    assert halo.stats.retries == 4


async def test_timeouts_and_connection_errors_are_retried(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Tickets/1").mock(
        side_effect=[
            httpx.ReadTimeout("slow"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json={"id": 1}),
        ]
    )
    async with make_client(clock) as halo:
        await halo.ticket(1)
    assert route.call_count == 3


async def test_connection_errors_past_the_cap_are_unavailable(mock, clock):
    mock.post("/auth/token").mock(side_effect=httpx.ConnectError("refused"))
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable, match="POST /auth/token: no response: ConnectError"):
            await halo.ticket(1)


async def test_a_failed_page_fails_the_listing(mock, clock):
    token_route(mock, TOKEN_A)
    data = clients(45)

    def answer(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page_no"])
        if number == 5:
            return httpx.Response(500)
        return httpx.Response(
            200, json={"record_count": 45, "clients": data[(number - 1) * 10 : number * 10]}
        )

    mock.get("/api/Client").mock(side_effect=answer)
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable, match="page 5: HTTP 500"):
            await halo.clients()


async def test_budget_paces_requests(clock):
    budget = RequestBudget(per_minute=60, burst=2, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        await budget.acquire()
    # Two from the burst, then one a second.
    assert clock.sleeps == pytest.approx([1.0, 1.0, 1.0])
    assert budget.waited_seconds == pytest.approx(3.0)


async def test_a_budget_with_a_deadline_refuses_instead_of_waiting_past_it(clock):
    budget = RequestBudget(per_minute=60, burst=1, clock=clock, sleep=clock.sleep)
    budget.stop_at(2.5)
    for _ in range(3):  # the burst, then one a second: the third goes at 2.0
        await budget.acquire()
    with pytest.raises(OutOfTime):
        await budget.acquire()  # it could only go at 3.0
    assert clock.sleeps == pytest.approx([1.0, 1.0])
    budget.stop_at(None)
    await budget.acquire()


async def test_a_429_asking_to_wait_past_the_deadline_ends_the_read_as_out_of_time(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Client").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "3600"}, json={})
    )
    budget = RequestBudget(per_minute=600, clock=clock, sleep=clock.sleep)
    budget.stop_at(600)
    async with make_client(clock, budget=budget) as halo:
        with pytest.raises(HaloOutOfTime, match="3600s"):
            await halo.clients()
    # Not a failure past the Retry-After cap, and no hour-long sleep: one try, then stop.
    assert halo.stats.requests["Client"] == 1
    assert sum(clock.sleeps) < 1


async def test_every_request_draws_on_the_shared_budget(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Client").mock(side_effect=paged(clients(35), "clients"))
    budget = RequestBudget(per_minute=6, burst=1, clock=clock, sleep=clock.sleep)
    async with make_client(clock, budget=budget) as halo:
        await halo.clients()
    # One token request and four pages: five requests, the first from the burst.
    assert halo.stats.total_requests == 5
    assert sum(clock.sleeps) == pytest.approx(40.0)


# -- secret hygiene ----------------------------------------------------------------------------


async def test_secret_and_tokens_never_reach_logs_or_errors(mock, clock, caplog):
    caplog.set_level(logging.DEBUG)
    token_route(mock, TOKEN_A, TOKEN_B)
    mock.get("/api/Client").mock(
        side_effect=[
            httpx.Response(401),
            httpx.Response(503),
            httpx.Response(429),
            httpx.Response(401),
        ]
    )
    errors: list[BaseException] = []
    async with make_client(clock, tenant="yourmsp") as halo:
        with pytest.raises(HaloAuthError) as caught:
            await halo.clients()
        errors.append(caught.value)
        text_of_client = repr(halo)
    mock.post("/auth/token").respond(400, json={"error": "invalid_client", "detail": SECRET})
    async with make_client(clock) as halo:
        with pytest.raises(HaloAuthError) as caught:
            await halo.ticket(1)
        errors.append(caught.value)

    texts = [record.getMessage() for record in caplog.records]
    texts.append(text_of_client)
    for error in errors:
        chain: BaseException | None = error
        while chain is not None:
            texts.extend([str(chain), repr(chain)])
            chain = chain.__cause__ or chain.__context__
    assert any("retry" in t for t in texts)  # something was logged
    for text in texts:
        for secret in (SECRET, TOKEN_A, TOKEN_B):
            assert secret not in text


def test_backoff_is_bounded_by_max_delay():
    policy = RetryPolicy(base_delay=1, max_delay=8)
    rng = random.Random(1)
    waits = [policy.backoff(attempt, rng) for attempt in range(1, 10)]
    assert all(w <= 8 for w in waits)
    assert waits[-1] >= 4
    assert math.isclose(max(policy.backoff(1, random.Random(s)) for s in range(50)), 1, rel_tol=0.1)


# -- adaptive budget -----------------------------------------------------------------------------


async def test_429_halves_the_rate_and_pauses_at_least_the_floor(mock, clock):
    token_route(mock, TOKEN_A)
    route = mock.get("/api/Client").mock(
        side_effect=[
            httpx.Response(429),  # HaloPSA sends no Retry-After
            httpx.Response(200, json={"record_count": 1, "clients": clients(1)}),
        ]
    )
    budget = RequestBudget(per_minute=60, burst=5, clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(max_attempts=4, base_delay=0.1, max_delay=1.0, backoff_429=30)
    async with make_client(clock, budget=budget, retry=retry) as halo:
        started = clock.now
        await halo.clients()
    assert route.call_count == 2
    assert budget.per_minute == pytest.approx(30)
    assert budget.throttles == 1
    assert halo.stats.throttled == 1
    # The retry left no sooner than the floor after the 429.
    assert clock.now - started >= 30
    assert max(clock.sleeps) >= 30


async def test_a_longer_retry_after_is_honoured_over_the_floor(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Tickets/1").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "45"}),
            httpx.Response(200, json={"id": 1}),
        ]
    )
    async with make_client(clock, retry=RetryPolicy(backoff_429=30)) as halo:
        await halo.ticket(1)
    assert clock.sleeps == [45]


async def test_budget_pauses_every_caller_and_halves_once_per_pause(clock):
    budget = RequestBudget(per_minute=120, burst=4, clock=clock, sleep=clock.sleep)
    assert budget.throttled(30) is True
    # 429s of requests that were already in flight land inside the pause: no further halving.
    clock.now += 0.5
    assert budget.throttled(30) is False
    assert budget.per_minute == pytest.approx(60)
    await budget.acquire()
    assert clock.now == pytest.approx(1000.5 + 30)  # paused until the later 429's end
    await budget.acquire()  # then paced at the halved rate: one a second
    assert clock.now == pytest.approx(1000.5 + 31)


async def test_budget_rate_never_falls_below_its_floor(clock):
    budget = RequestBudget(per_minute=64, clock=clock, sleep=clock.sleep, min_share=1 / 8)
    for _ in range(10):
        budget.throttled(0)
        clock.now += 1
    assert budget.per_minute == pytest.approx(8)


async def test_budget_recovers_additively_toward_the_configured_rate(clock):
    budget = RequestBudget(
        per_minute=100,
        burst=1,
        clock=clock,
        sleep=clock.sleep,
        recover_share=0.1,
        recover_seconds=60,
    )
    budget.throttled(30)
    budget.throttled(0)  # inside the pause: ignored
    assert budget.per_minute == pytest.approx(50)
    rates = []
    for _ in range(7):
        clock.now += 60
        await budget.acquire()
        rates.append(round(budget.per_minute))
    # Ten per minute back for each clean minute after the pause, then capped at the configured.
    assert rates == [50, 60, 70, 80, 90, 100, 100]
    # A new 429 halves what is in force, not the configured rate.
    clock.now += 1
    budget.throttled(0)
    assert budget.per_minute == pytest.approx(50)


async def test_a_budget_set_above_the_real_limit_settles_under_it(mock, clock):
    """HaloPSA's window allows 2 requests a second here; the budget starts at 10 and adapts."""
    token_route(mock, TOKEN_A)
    sent: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        now = clock.now
        if len([t for t in sent if t > now - 1.0]) >= 2:
            return httpx.Response(429)
        sent.append(now)
        number = int(request.url.params["page_no"])
        chunk = clients(200)[(number - 1) * 10 : number * 10]
        return httpx.Response(200, json={"record_count": 200, "clients": chunk})

    mock.get("/api/Client").mock(side_effect=answer)
    budget = RequestBudget(per_minute=600, burst=1, clock=clock, sleep=clock.sleep)
    retry = RetryPolicy(backoff_429=1, max_throttled=3)
    async with make_client(clock, budget=budget, retry=retry, max_concurrency=1) as halo:
        listing = await halo.clients()
    assert len(listing.records) == 200
    assert budget.per_minute <= 120
    assert halo.stats.throttled <= 4


# -- sibling listings ----------------------------------------------------------------------------


async def test_a_failed_listing_cancels_its_siblings(mock, clock):
    token_route(mock, TOKEN_A)
    release = asyncio.Event()
    site_calls: list[int] = []

    async def sites(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page_no"])
        site_calls.append(number)
        await release.wait()  # a slow HaloPSA: the page is in flight when clients fail
        chunk = [
            {"id": i, "client_id": 1, "name": "s"} for i in range(10 * number - 9, 10 * number + 1)
        ]
        return httpx.Response(200, json={"record_count": 500, "sites": chunk})

    mock.get("/api/Site").mock(side_effect=sites)
    clients_route = mock.get("/api/Client").respond(403)
    async with make_client(clock) as halo:
        with pytest.raises(HaloAuthError, match="GET /api/Client page 1: HTTP 403"):
            await gather_or_cancel(halo.sites(), halo.clients())
        release.set()
        for _ in range(20):  # give anything left running every chance to send more
            await asyncio.sleep(0)
        assert site_calls == [1]  # only the page already in flight; none after the failure
        assert clients_route.call_count == 1
        assert halo.stats.requests["Site"] == 1


async def test_a_sibling_in_back_off_stops_waiting_when_another_fails(mock, clock):
    token_route(mock, TOKEN_A)
    items = mock.get("/api/Item").respond(503)
    contracts = mock.get("/api/ClientContract").respond(404)
    pause = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await pause.wait()  # a back-off that would never end on its own

    async with make_client(clock, sleep=sleep) as halo:
        with pytest.raises(HaloNotFound):
            await gather_or_cancel(halo.items(), halo.contracts())
    assert items.call_count == 1
    assert contracts.call_count == 1


async def test_gather_or_cancel_returns_results_in_order(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/Client").respond(json={"record_count": 2, "clients": clients(2)})
    mock.get("/api/Item").respond(json={"record_count": 1, "items": [{"id": 7, "name": "x"}]})
    async with make_client(clock) as halo:
        got_clients, got_items = await gather_or_cancel(halo.clients(), halo.items())
    assert [c.id for c in got_clients.records] == [1, 2]
    assert [i.id for i in got_items.records] == [7]


# -- recurring invoices listed without lines -----------------------------------------------------


def invoice(invoice_id: int, *, lines: bool = True) -> dict:
    record = {"id": invoice_id, "client_id": 420, "disabled": False}
    if lines:
        record["lines"] = [{"id": abs(invoice_id) * 10, "_itemid": 1402, "qty_order": 1.0}]
    return record


async def test_invoices_listed_without_lines_are_read_by_id(mock, clock):
    token_route(mock, TOKEN_A)
    listed = [invoice(-94), invoice(-95, lines=False), invoice(-96), invoice(-97, lines=False)]
    listed[1]["id"] = "-95.0"  # HaloPSA's decimal ids
    mock.get("/api/RecurringInvoice").respond(json={"record_count": 4, "invoices": listed})
    by_id = mock.get(url__regex=r"/api/RecurringInvoice/-?\d+$").mock(
        side_effect=lambda request: httpx.Response(
            200, json=invoice(int(request.url.path.rsplit("/", 1)[1]))
        )
    )
    async with make_client(clock) as halo:
        listing = await halo.recurring_invoices()
    assert by_id.call_count == 2
    assert sorted(c.request.url.path for c in by_id.calls) == [
        "/api/RecurringInvoice/-95",
        "/api/RecurringInvoice/-97",
    ]
    assert [i.id for i in listing.records] == [-94, -95, -96, -97]
    assert all(len(i.lines) == 1 for i in listing.records)
    assert listing.lines_fetched_by_id == 2
    assert halo.stats.lines_fetched_by_id == 2
    assert halo.stats.requests["RecurringInvoice/{id}"] == 2


async def test_an_invoice_with_an_empty_lines_list_is_not_read_again(mock, clock):
    token_route(mock, TOKEN_A)
    listed = [{**invoice(94), "lines": []}]
    mock.get("/api/RecurringInvoice").respond(json={"record_count": 1, "invoices": listed})
    by_id = mock.get(url__regex=r"/api/RecurringInvoice/-?\d+$").respond(404)
    async with make_client(clock) as halo:
        listing = await halo.recurring_invoices()
    assert by_id.call_count == 0
    assert listing.records[0].lines == []
    assert listing.lines_fetched_by_id == 0


async def test_an_invoice_deleted_before_its_read_by_id_is_dropped(mock, clock):
    token_route(mock, TOKEN_A)
    listed = [invoice(94), invoice(95, lines=False)]
    mock.get("/api/RecurringInvoice").respond(json={"record_count": 2, "invoices": listed})
    mock.get("/api/RecurringInvoice/95").respond(404)
    async with make_client(clock) as halo:
        listing = await halo.recurring_invoices()
    assert [i.id for i in listing.records] == [94]
    assert listing.rejects == []


async def test_reads_by_id_draw_on_the_budget(mock, clock):
    token_route(mock, TOKEN_A)
    listed = [invoice(n, lines=False) for n in range(1, 6)]
    mock.get("/api/RecurringInvoice").respond(json={"record_count": 5, "invoices": listed})
    mock.get(url__regex=r"/api/RecurringInvoice/-?\d+$").mock(
        side_effect=lambda request: httpx.Response(
            200, json=invoice(int(request.url.path.rsplit("/", 1)[1]))
        )
    )
    budget = RequestBudget(per_minute=60, burst=1, clock=clock, sleep=clock.sleep)
    async with make_client(clock, budget=budget) as halo:
        await halo.recurring_invoices()
    # Token, listing, five reads by id: seven requests, one a second after the first.
    assert halo.stats.total_requests == 7
    assert sum(clock.sleeps) == pytest.approx(6.0)


async def test_a_failed_read_by_id_fails_the_listing(mock, clock):
    token_route(mock, TOKEN_A)
    listed = [invoice(94, lines=False)]
    mock.get("/api/RecurringInvoice").respond(json={"record_count": 1, "invoices": listed})
    mock.get("/api/RecurringInvoice/94").respond(403)
    async with make_client(clock) as halo:
        with pytest.raises(HaloAuthError, match="GET /api/RecurringInvoice/94: HTTP 403"):
            await halo.recurring_invoices()


async def test_one_invoice_by_id(mock, clock):
    token_route(mock, TOKEN_A)
    mock.get("/api/RecurringInvoice/-94").respond(json=invoice(-94))
    async with make_client(clock) as halo:
        got = await halo.recurring_invoice(-94)
    assert got.id == -94
    assert len(got.lines) == 1


# -- the outgoing call line ----------------------------------------------------------------------


def outgoing_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "halo_immy.outgoing"]


async def test_every_call_logs_one_outgoing_line_with_retries(mock, clock, caplog):
    caplog.set_level(logging.INFO, logger="halo_immy.outgoing")
    token_route(mock, TOKEN_A)
    mock.get("/api/Tickets/12345").mock(
        side_effect=[httpx.Response(502), httpx.Response(429), httpx.Response(200, json={"id": 1})]
    )
    async with make_client(clock, tenant="yourmsp") as halo:
        await halo.ticket(12345)
    lines = outgoing_lines(caplog)
    assert lines == [
        {
            "event": "outgoing_call",
            "service": "halopsa",
            "method": "POST",
            "path": "/auth/token",
            "status": 200,
            "ms": lines[0]["ms"],
            "retries": 0,
            "throttled": 0,
        },
        {
            "event": "outgoing_call",
            "service": "halopsa",
            "method": "GET",
            "path": "/api/Tickets/{id}",
            "status": 200,
            "ms": lines[1]["ms"],
            "retries": 2,
            "throttled": 1,
        },
    ]
    text = " ".join(r.getMessage() for r in caplog.records if r.name == "halo_immy.outgoing")
    for secret in (SECRET, TOKEN_A, "12345", "yourmsp"):
        assert secret not in text


async def test_a_failed_call_logs_its_last_status_and_error(mock, clock, caplog):
    caplog.set_level(logging.INFO, logger="halo_immy.outgoing")
    token_route(mock, TOKEN_A)
    mock.get("/api/Client").respond(503)
    async with make_client(clock) as halo:
        with pytest.raises(HaloUnavailable):
            await halo.clients()
    last = outgoing_lines(caplog)[-1]
    assert (last["path"], last["status"], last["retries"], last["error"]) == (
        "/api/Client",
        503,
        3,
        "HaloUnavailable",
    )


async def test_the_429_floor_comes_from_settings(mock, clock):
    settings = load_settings(
        halo_base_url=BASE,
        halo_client_id="client-id-1",
        halo_client_secret=SECRET,
        tables_connection_string="UseDevelopmentStorage=true",
        halo_backoff_429_seconds=7,
    )
    token_route(mock, TOKEN_A)
    mock.get("/api/Tickets/1").mock(
        side_effect=[httpx.Response(429), httpx.Response(200, json={"id": 1})]
    )
    budget = RequestBudget(60, clock=clock, sleep=clock.sleep)
    async with HaloClient.from_settings(
        settings, budget=budget, sleep=clock.sleep, clock=clock
    ) as halo:
        await halo.ticket(1)
    assert sum(clock.sleeps) >= 7
    assert budget.per_minute == pytest.approx(30)
