"""The HaloPSA client against the running sandbox: real HTTP, real paging, faults switched on."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date

import pytest

from sandbox.halo import Faults
from sandbox.halo_data import generate, inject_malformed
from sandbox.processes import stop_process, wait_for_line
from shared.halo.client import HaloClient
from shared.halo.errors import HaloAuthError
from shared.outbound.budget import RequestBudget, RetryPolicy

pytestmark = pytest.mark.integration
TODAY = date.today()
FAST_RETRY = RetryPolicy(
    max_attempts=8, base_delay=0.01, max_delay=0.1, max_retry_after=2, backoff_429=0.05
)


def client_for(sandbox, **kwargs) -> HaloClient:
    kwargs.setdefault("retry", FAST_RETRY)
    return HaloClient(sandbox.url, "sandbox-client", "sandbox-secret", page_size=100, **kwargs)


async def read_everything(halo: HaloClient) -> dict:
    clients, sites, contracts, invoices, items = await asyncio.gather(
        halo.clients(), halo.sites(), halo.contracts(), halo.recurring_invoices(), halo.items()
    )
    return {
        "clients": clients,
        "sites": sites,
        "contracts": contracts,
        "invoices": invoices,
        "items": items,
    }


def test_full_read_of_2000_clients_with_faults_reads_every_record_once(halo_sandbox, caplog):
    caplog.set_level(logging.WARNING, logger="halo_immy.halo")
    data, broken = inject_malformed(generate(2000, seed=11, today=TODAY), 6, seed=2)
    faults = Faults(error_rate=0.08, error_status=503, seed=4, latency_ms=2, revoke_tokens_after=40)
    sandbox = halo_sandbox(data, faults=faults)

    async def go():
        async with client_for(sandbox, max_concurrency=6) as halo:
            return await read_everything(halo), halo.stats

    got, stats = asyncio.run(go())
    for kind, listing in got.items():
        valid = [r["id"] for r in getattr(data, kind) if (kind, r["id"]) not in broken]
        read = [r.id for r in listing.records]
        assert sorted(read) == sorted(valid), kind
        assert len(read) == len(set(read)), kind  # exactly once
        assert listing.duplicates == 0
    rejected = {(r.kind, int(r.record_id)) for listing in got.values() for r in listing.rejects}
    assert rejected == set(broken)
    lines = sum(len(i.lines) for i in got["invoices"].records)
    assert lines == sum(
        len(i["lines"]) for i in data.invoices if ("invoices", i["id"]) not in set(broken)
    )
    # The faults really happened and were ridden out.
    server = sandbox.stats()
    assert server["statuses"].get("503", 0) > 0
    assert server["statuses"].get("401", 0) >= 1
    assert stats.retries >= server["statuses"]["503"]
    assert stats.token_fetches >= 2
    assert server["requests"] == dict(stats.requests)


def test_500s_and_a_429_every_third_request_are_ridden_out(halo_sandbox):
    data = generate(400, seed=3, today=TODAY)
    faults = Faults(error_rate=0.05, error_status=500, seed=8, throttle_every=3)
    sandbox = halo_sandbox(data, faults=faults)

    async def go():
        budget = RequestBudget(600_000)
        async with client_for(sandbox, budget=budget, max_concurrency=4) as halo:
            return await read_everything(halo), halo.stats, budget

    got, stats, budget = asyncio.run(go())
    for kind, listing in got.items():
        assert sorted(r.id for r in listing.records) == sorted(
            r["id"] for r in getattr(data, kind)
        ), kind
    server = sandbox.stats()
    assert server["statuses"]["429"] == stats.throttled > 0
    assert server["statuses"].get("500", 0) > 0
    assert server["total"] == stats.total_requests
    assert budget.throttles > 0 and budget.per_minute < 600_000


def test_invoices_listed_without_lines_are_read_by_id_from_the_sandbox(halo_sandbox):
    data = generate(300, seed=5, today=TODAY)
    sandbox = halo_sandbox(data, faults=Faults(omit_lines=0.25, seed=3))

    async def go():
        async with client_for(sandbox) as halo:
            return await halo.recurring_invoices(), halo.stats

    listing, stats = asyncio.run(go())
    omitted = [i for i in data.invoices if sandbox.faults.omits_lines(i)]
    assert omitted
    assert listing.lines_fetched_by_id == stats.lines_fetched_by_id == len(omitted)
    assert sandbox.stats()["requests"]["RecurringInvoice"] == listing.pages + len(omitted)
    lines = {i.id: len(i.lines) for i in listing.records}
    assert lines == {i["id"]: len(i["lines"]) for i in data.invoices}


def test_rate_limited_sandbox_is_ridden_out_with_retry_after(halo_sandbox):
    sandbox = halo_sandbox(
        generate(150, seed=1, today=TODAY), faults=Faults(rate_limit_per_second=5)
    )

    async def go():
        async with client_for(sandbox, max_concurrency=8) as halo:
            return await read_everything(halo)

    got = asyncio.run(go())
    assert len(got["clients"].records) == 150
    assert sandbox.stats()["statuses"].get("429", 0) > 0


def test_ticket_assets_and_users_of_a_client(halo_sandbox):
    data = generate(30, seed=9, today=TODAY)
    sandbox = halo_sandbox(data)
    ticket_raw = data.tickets[0]

    async def go():
        async with client_for(sandbox) as halo:
            ticket = await halo.ticket(ticket_raw["id"])
            assets = await halo.assets(ticket.client_id)
            users = await halo.users(ticket.client_id)
            return ticket, assets, users

    ticket, assets, users = asyncio.run(go())
    assert ticket.summary == ticket_raw["summary"]
    cid = ticket_raw["client_id"]
    assert sorted(a.id for a in assets.records) == sorted(
        a["id"] for a in data.assets if a["client_id"] == cid and not a.get("inactive")
    )
    assert {u.client_id for u in users.records} == {cid}


def test_wrong_secret_is_an_auth_error_naming_no_secret(halo_sandbox):
    sandbox = halo_sandbox(generate(5, seed=1, today=TODAY))

    async def go():
        async with HaloClient(
            sandbox.url, "sandbox-client", "not-the-secret", retry=FAST_RETRY
        ) as halo:
            await halo.clients()

    with pytest.raises(HaloAuthError, match="invalid_client") as caught:
        asyncio.run(go())
    assert "not-the-secret" not in str(caught.value)


def test_sandbox_cli_serves_the_client(tmp_path):
    import subprocess

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox.halo",
            "--port",
            "0",
            "--clients",
            "120",
            "--tenant",
            "msp",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        line = wait_for_line(proc, b"listening on", 30).decode().strip()
        url = line.split("listening on ", 1)[1].split()[0]

        async def go():
            async with HaloClient(
                url, "sandbox-client", "sandbox-secret", tenant="msp", retry=FAST_RETRY
            ) as halo:
                return await halo.clients()

        assert len(asyncio.run(go()).records) == 120
    finally:
        stop_process(proc)
