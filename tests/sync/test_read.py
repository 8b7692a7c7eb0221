"""A sync through SQL reports serves what a sync through REST serves, or does not serve at all.

One data set, one sandbox, syncs into real Azurite (HALO_READ_MODE=rest, report and auto),
compared record by record after the models and target by target, on the data as the REST API
answers it: nothing is reduced first. Where the sandbox's SQL tables cannot hold what REST says
(a line's own item code, an invoice header's own dates: no HaloPSA column holds them), or a fault
makes them disagree, the proof sample must notice: `auto` then reads through REST and serves REST's
answer, `report` fails and names the disagreement. `as_tables_hold_it` (data whose REST answers
the tables can hold) shows the report path itself reads correctly and cheaply.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed
from sandbox.halo_report import as_tables_hold_it
from shared.core.rules import ItemMatch, Rule
from shared.halo import proof as halo_proof
from shared.halo.client import HaloClient
from shared.outbound.budget import RetryPolicy
from shared.settings import Settings, load_settings
from shared.store.repository import Store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from tests.conftest import azurite_service, served

pytestmark = pytest.mark.integration

TODAY = date.today()
RULES = (
    Rule(software="Huntress", contract_types=["Managed Security"]),
    Rule(software="Backup", contract_types=["backup"], grace_days=30),
    Rule(software="SentinelOne", items=[ItemMatch(name="SentinelOne Complete")]),
    Rule(software="S1 by code", items=[ItemMatch(code="S1-COMPLETE")]),
    Rule(software="M365", items=[ItemMatch(code="M365-BP"), ItemMatch(code="CFQ7TTC0LDPB")]),
    Rule(software="Managed", items=[ItemMatch(id=5)], contract_types=["Managed Services"]),
)
WOODGROVE = 7  # pays for S1-COMPLETE on a line whose item carries no code (sandbox.halo_data)
# Generated data over the pages 2,000 clients fill at a page size of 100 (20 of clients, about 60
# of contracts): the proof samples pages of every list here rather than reading whole lists, as
# it does at scale, at under a third of the records to sync, read back and compare. Syncs of
# 2,000 clients are tests/sync/test_run.py's and tests/halo/test_integration.py's.
GENERATED_CLIENTS = 600
GENERATED_PAGE_SIZE = 30
_prefixes = itertools.count()


@pytest.fixture(autouse=True)
def _seeded_sample(monkeypatch):
    # The proof draws its sample at random; a fixed seed makes each test's sample the same.
    monkeypatch.setattr(halo_proof, "sample_rng", lambda: random.Random(7))


def settings_for(sandbox, azurite, mode: str, page_size: int = 100) -> Settings:
    return load_settings(
        halo_base_url=sandbox.url,
        halo_client_id="sandbox-client",
        halo_client_secret="sandbox-secret",
        halo_requests_per_minute=600_000,
        halo_page_size=page_size,
        halo_read_mode=mode,
        tables_connection_string=azurite.connection_string,
        tables_endpoint=None,
    )


def new_store(azurite) -> Store:
    service = azurite_service(azurite)
    store = Store(service, prefix=f"r{next(_prefixes)}x")
    for rule in RULES:
        store.put_rule_document(rule.key, rule.model_dump(mode="json"))
    return store


def sync(
    sandbox,
    azurite,
    mode: str,
    *,
    store: Store | None = None,
    at: datetime | None = None,
    outcome: Outcome = Outcome.SUCCEEDED,
    page_size: int = 100,
) -> tuple[SyncReport, Store]:
    store = store or new_store(azurite)
    settings = settings_for(sandbox, azurite, mode, page_size)

    async def go() -> SyncReport:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2)
        async with HaloClient.from_settings(settings, retry=retry) as halo:
            clock = (lambda: at) if at is not None else None
            return await run_sync(settings, store=store, halo=halo, now=clock)

    report = asyncio.run(go())
    assert report.outcome is outcome, report.error
    return report, store


def stored(store: Store) -> dict[str, Any]:
    """Every record and every rule's targets (with their reasons) a reader sees."""
    found = served(store, RULES)
    del found["generation"]  # two stores' generations differ; their contents must not
    return found


def assert_same(by_rest: dict[str, Any], other: dict[str, Any]) -> None:
    for kind in by_rest:
        assert other[kind] == by_rest[kind], kind


def targets_of(found: dict[str, Any], software: str) -> set[int]:
    return {t["client_id"] for t in found[software]}


def findings(report: SyncReport) -> list[str]:
    return (report.read_proof or {}).get("samples", [])


# -- the data as REST answers it --------------------------------------------------------------


def test_demo_auto_serves_rest_targets_and_names_what_the_tables_cannot_hold(halo_sandbox, azurite):
    sandbox = halo_sandbox(demo_data(TODAY))
    rest, rest_store = sync(sandbox, azurite, "rest")
    auto, auto_store = sync(sandbox, azurite, "auto")
    by_rest = stored(rest_store)
    assert WOODGROVE in targets_of(by_rest, "S1 by code")
    assert_same(by_rest, stored(auto_store))
    assert auto.read_mode == "rest" and auto.targets == rest.targets
    # Woodgrove's line carries its own code, which no INVOICEDETAIL column holds: named, with ids.
    assert any(
        "invoice_line" in f and "item_internal_reference" in f and "'S1-COMPLETE'" in f
        for f in findings(auto)
    ), findings(auto)
    assert auto.read_proof["fallback"].startswith("the REST sample disagreed")
    assert auto.read_proof["distrusted_until"]
    (run,) = auto_store.recent_runs(1)
    assert '"fallback"' in run["read_proof"]


def test_demo_report_mode_fails_and_says_why_rather_than_serve_a_guess(halo_sandbox, azurite):
    sandbox = halo_sandbox(demo_data(TODAY))
    report, store = sync(sandbox, azurite, "report", outcome=Outcome.FAILED)
    assert "disagrees with HaloPSA's REST API" in report.error
    assert report.read_proof["findings"] >= 1 and findings(report)
    assert store.current() is None  # nothing was served from the disproved read


def test_generated_clients_auto_serves_what_rest_serves(halo_sandbox, azurite):
    data, _ = inject_malformed(generate(GENERATED_CLIENTS, seed=11, today=TODAY), 10, seed=2)
    sandbox = halo_sandbox(data)
    rest, rest_store = sync(sandbox, azurite, "rest", page_size=GENERATED_PAGE_SIZE)
    auto, auto_store = sync(sandbox, azurite, "auto", page_size=GENERATED_PAGE_SIZE)
    assert_same(stored(rest_store), stored(auto_store))
    assert auto.read_mode == "rest" and auto.read_proof["findings"] >= 1
    assert auto.rejected == rest.rejected and auto.read == rest.read


# -- data whose REST answers the tables can hold ------------------------------------------------


def both_ways_equal(
    halo_sandbox, azurite, data: HaloDataSet, page_size: int = 100
) -> tuple[SyncReport, SyncReport, Store]:
    sandbox = halo_sandbox(data)
    rest, rest_store = sync(sandbox, azurite, "rest", page_size=page_size)
    report, report_store = sync(sandbox, azurite, "report", page_size=page_size)
    assert (rest.read_mode, report.read_mode) == ("rest", "report")
    assert report.read_proof["findings"] == 0, findings(report)
    assert_same(stored(rest_store), stored(report_store))
    assert report.read == rest.read
    assert report.rejected == rest.rejected
    assert report.targets == rest.targets
    return rest, report, report_store


def test_demo_held_by_the_tables_syncs_the_same_through_proven_reports(halo_sandbox, azurite):
    data = as_tables_hold_it(demo_data(TODAY))
    _, report, report_store = both_ways_equal(halo_sandbox, azurite, data)
    assert report.targets["Huntress"] and report.targets["SentinelOne"]
    proof = report.read_proof
    # A small instance: every contract, item and invoice is compared, and a page each of clients
    # and sites (here all of them).
    assert proof["compared"] == {
        "clients": len(data.clients),
        "sites": len(data.sites),
        "contracts": len(data.contracts),
        "items": len(data.items),
        "invoices": len(data.invoices),
    }
    # Token + bounds + one range per table (clients' Entra tenants too: the demo's Northwind and
    # Woodgrove have some) + the sample (a page of each of five lists).
    assert report.halo_requests == 1 + 1 + 7 + 5
    entra = {c["id"]: c["entra_tenant_ids"] for c in stored(report_store)["clients"]}
    assert entra[3] == ["6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"] and entra[1] == []


def test_generated_clients_held_by_the_tables_sync_the_same_in_a_few_requests(
    halo_sandbox, azurite
):
    data, _ = inject_malformed(generate(GENERATED_CLIENTS, seed=11, today=TODAY), 10, seed=2)
    held = as_tables_hold_it(data)
    rest, report, _ = both_ways_equal(halo_sandbox, azurite, held, GENERATED_PAGE_SIZE)
    assert report.rejected  # the malformed records, rejected the same way (compared above)
    assert all(report.targets.values())
    # Sampled, as at scale: pages of each list, not whole lists.
    compared = report.read_proof["compared"]
    assert compared["clients"] < len(held.clients) and compared["sites"] < len(held.sites)
    assert compared["contracts"] < len(held.contracts)
    assert compared["invoices"] < len(held.invoices)
    sample = report.read_proof["requests"]
    # A page each of clients, sites and items, SAMPLE_PAGES of contracts and of invoices.
    assert sample <= 3 + 2 * halo_proof.SAMPLE_PAGES + halo_proof.TYPE_READS
    assert report.halo_requests <= 12 + sample < rest.halo_requests


def test_auto_reads_through_reports_when_they_are_proven(halo_sandbox, azurite):
    sandbox = halo_sandbox(as_tables_hold_it(demo_data(TODAY)))
    report, _ = sync(sandbox, azurite, "auto")
    assert report.read_mode == "report" and report.read_proof["findings"] == 0
    assert "fallback" not in report.read_proof


def test_auto_reads_through_rest_when_halopsa_refuses_reports(halo_sandbox, azurite):
    refused = Faults(fail=[{"resource": "Report", "status": 403}])
    sandbox = halo_sandbox(as_tables_hold_it(demo_data(TODAY)), faults=refused)
    report, store = sync(sandbox, azurite, "auto")
    assert report.read_mode == "rest" and "403" in report.read_proof["fallback"]
    assert stored(store)["SentinelOne"]
    runs = store.recent_runs(1)
    assert runs[0]["read_mode"] == "rest"


# -- disagreement faults: each is caught, and what serves is REST's ----------------------------


def _with_line_codes(data: HaloDataSet) -> HaloDataSet:
    """`data` where every line carries the item_code HaloPSA copies onto a line (IDItem_Code),
    and one invoice is switched off by its header while its schedule runs."""
    for invoice in data.invoices:
        for line in invoice.get("lines", []):
            line["item_code"] = f"SKU-{line['_itemid']}"
    running = next(i for i in data.invoices if i.get("schedule") and not i["disabled"])
    running["disabled"] = True
    return data


@pytest.mark.parametrize(
    ("report_fault", "named"),
    [
        ({"contract_type_offset": 1}, "contracttype"),
        ({"disabled_from": "schedule"}, "switched_off"),
        ({"drop_line_codes": True}, "item_code"),
        ({"drop_entra_tenants": True}, "client 3 entra_tenant_ids"),
        ({"lose_rows": {"invoices": 1}}, "invoices * records"),
        ({"lose_rows": {"invoice_lines": 2}}, "invoice_lines * records"),
    ],
)
def test_a_report_that_disagrees_is_caught_and_rest_serves(
    halo_sandbox, azurite, report_fault, named
):
    data = _with_line_codes(as_tables_hold_it(demo_data(TODAY)))
    sandbox = halo_sandbox(data, faults=Faults(report=report_fault))
    _, rest_store = sync(sandbox, azurite, "rest")
    auto, auto_store = sync(sandbox, azurite, "auto")
    assert auto.read_mode == "rest"
    assert any(named in f for f in findings(auto)), findings(auto)
    assert_same(stored(rest_store), stored(auto_store))
    failed, _ = sync(sandbox, azurite, "report", outcome=Outcome.FAILED)
    assert failed.error and failed.read_proof and failed.read_mode == "report"
    assert "fallback" not in failed.read_proof  # report mode never falls back
    if "* records" in named:
        assert "came back short" in failed.error


def test_a_report_past_the_gateway_deadline_is_split_and_the_sync_succeeds(halo_sandbox, azurite):
    # 400 clients hold some 1,200 contracts, 800 invoices and 2,400 invoice lines: past a deadline
    # of 800 rows their reports are split, the lines' twice (as 2,000 clients' are past 3,000).
    data = as_tables_hold_it(generate(400, seed=5, today=TODAY))
    sandbox = halo_sandbox(data, faults=Faults(report={"deadline_rows": 800}))
    _, rest_store = sync(sandbox, azurite, "rest")
    report, report_store = sync(sandbox, azurite, "report")
    assert report.read_mode == "report" and report.read_proof["splits"] >= 1
    assert report.read_proof["findings"] == 0
    assert_same(stored(rest_store), stored(report_store))


def test_a_deadline_no_split_can_meet_makes_auto_read_through_rest(halo_sandbox, azurite):
    sandbox = halo_sandbox(
        as_tables_hold_it(demo_data(TODAY)), faults=Faults(report={"deadline_rows": 1})
    )
    auto, _ = sync(sandbox, azurite, "auto")
    assert auto.read_mode == "rest" and auto.read_proof["fallback"].startswith("report read failed")
    failed, _ = sync(sandbox, azurite, "report", outcome=Outcome.FAILED)
    assert "still past the gateway deadline" in failed.error and failed.read_mode == "report"


def test_after_a_disagreement_auto_stays_on_rest_for_a_day_then_proves_again(halo_sandbox, azurite):
    data = as_tables_hold_it(demo_data(TODAY))
    sandbox = halo_sandbox(data, faults=Faults(report={"contract_type_offset": 3}))
    now = datetime.now(UTC)
    first, store = sync(sandbox, azurite, "auto", at=now)
    assert first.read_mode == "rest" and store.report_distrust() is not None
    sandbox.set_faults(Faults())  # the instance agrees again
    later, _ = sync(sandbox, azurite, "auto", store=store, at=now + timedelta(hours=2))
    assert later.read_mode == "rest" and "distrusted until" in later.read_proof["fallback"]
    assert (
        later.halo_requests
        == first.halo_requests
        - first.read_proof["report_requests"]
        - (first.read_proof["requests"])
    )  # no report and no sample sent while distrusted
    day_after, _ = sync(sandbox, azurite, "auto", store=store, at=now + timedelta(hours=25))
    assert day_after.read_mode == "report" and store.report_distrust() is None


def test_a_disagreement_is_recorded_before_the_rest_read_that_may_not_end(halo_sandbox, azurite):
    # Pages of 10: the demo's 11 sites are two pages; the proof's seeded draw reads page 2, the
    # REST read that follows its finding fails on page 1.
    data = as_tables_hold_it(demo_data(TODAY))
    faults = Faults(
        report={"contract_type_offset": 2}, fail=[{"resource": "Site", "page": 1, "status": 500}]
    )
    sandbox = halo_sandbox(data, faults=faults)
    failed, store = sync(sandbox, azurite, "auto", outcome=Outcome.FAILED, page_size=10)
    assert "Site" in failed.error
    assert failed.read_proof["findings"] >= 1 and failed.read_proof["distrusted_until"]
    assert store.report_distrust() is not None  # the next run does not trust reports either
    (run,) = store.recent_runs(1)
    assert "contracttype" in run["read_proof"]


def test_a_storage_fault_on_the_distrust_row_costs_a_warning_not_the_run(
    halo_sandbox, azurite, monkeypatch
):
    from azure.core.exceptions import ServiceRequestError

    sandbox = halo_sandbox(demo_data(TODAY))
    store = new_store(azurite)

    def refuse(*_args, **_kwargs):
        raise ServiceRequestError("storage unreachable")

    monkeypatch.setattr(store, "set_report_distrust", refuse)
    report, _ = sync(sandbox, azurite, "auto", store=store)
    assert report.read_mode == "rest" and report.read_proof["findings"] >= 1
    assert any("report distrust was not recorded" in w for w in report.warnings)
    assert "distrusted_until" not in report.read_proof
