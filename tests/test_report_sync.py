"""A sync through SQL reports stores what a sync through REST stores: same records, same targets.

One data set, one sandbox, two syncs into real Azurite (HALO_READ_MODE=rest and =report), compared
record by record after the models and target by target. Also: `auto` picks reports when HaloPSA
runs them and REST when it refuses, and the run record says which ran.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import date
from typing import Any

import pytest
from azure.data.tables import TableServiceClient

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed
from sandbox.halo_report import as_tables_hold_it
from shared.generation import read_clients, read_items, read_rule_targets
from shared.halo_client import HaloClient, RetryPolicy
from shared.rules import ItemMatch, Rule
from shared.settings import Settings, load_settings
from shared.store import Store
from shared.sync import Outcome, SyncReport, run_sync

pytestmark = pytest.mark.integration

TODAY = date.today()
RULES = (
    Rule(software="Huntress", contract_types=["Managed Security"]),
    Rule(software="Backup", contract_types=["backup"], grace_days=30),
    Rule(software="SentinelOne", items=[ItemMatch(name="SentinelOne Complete")]),
    Rule(software="M365", items=[ItemMatch(code="M365-BP"), ItemMatch(code="CFQ7TTC0LDPB")]),
    Rule(software="Managed", items=[ItemMatch(id=5)], contract_types=["Managed Services"]),
)
_prefixes = itertools.count()


def settings_for(sandbox, azurite, mode: str) -> Settings:
    return load_settings(
        halo_base_url=sandbox.url,
        halo_client_id="sandbox-client",
        halo_client_secret="sandbox-secret",
        halo_requests_per_minute=600_000,
        halo_page_size=100,
        halo_read_mode=mode,
        tables_connection_string=azurite.connection_string,
        tables_endpoint=None,
    )


def new_store(azurite) -> Store:
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    store = Store(service, prefix=f"r{next(_prefixes)}x")
    for rule in RULES:
        store.put_rule_document(rule.key, rule.model_dump(mode="json"))
    return store


def sync(sandbox, azurite, mode: str) -> tuple[SyncReport, Store]:
    store = new_store(azurite)
    settings = settings_for(sandbox, azurite, mode)

    async def go() -> SyncReport:
        retry = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, max_retry_after=2)
        async with HaloClient.from_settings(settings, retry=retry) as halo:
            return await run_sync(settings, store=store, halo=halo)

    report = asyncio.run(go())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    return report, store


def stored(store: Store) -> dict[str, Any]:
    """Every record and every rule's targets a reader sees."""
    pointer = store.current()
    assert pointer is not None
    records = read_clients(store, pointer.generation)

    def dump(kind: str, models) -> list[dict]:
        return [m.model_dump(mode="json") for m in models]

    out = {
        "clients": dump("clients", (r.client for r in records)),
        "sites": dump("sites", (s for r in records for s in r.sites)),
        "contracts": dump("contracts", (c for r in records for c in r.contracts)),
        "invoices": dump("invoices", (i for r in records for i in r.invoices)),
        "items": dump("items", read_items(store, pointer.generation)),
    }
    for rule in RULES:
        found = read_rule_targets(store, pointer.generation, rule.key)
        out[rule.software] = [t.model_dump(mode="json") for t in found or []]
    return out


def both_ways_equal(halo_sandbox, azurite, data: HaloDataSet) -> tuple[SyncReport, SyncReport]:
    sandbox = halo_sandbox(data)
    rest, rest_store = sync(sandbox, azurite, "rest")
    report, report_store = sync(sandbox, azurite, "report")
    assert (rest.read_mode, report.read_mode) == ("rest", "report")
    by_rest, by_report = stored(rest_store), stored(report_store)
    for kind in by_rest:
        assert by_report[kind] == by_rest[kind], kind
    assert report.read == rest.read
    assert report.rejected == rest.rejected
    assert report.targets == rest.targets
    return rest, report


def test_demo_set_syncs_the_same_through_reports_and_rest(halo_sandbox, azurite):
    _, report = both_ways_equal(halo_sandbox, azurite, as_tables_hold_it(demo_data(TODAY)))
    assert report.targets["Huntress"] and report.targets["SentinelOne"]
    # Token + bounds + one range per table (a small set: REST needs about as few).
    assert report.halo_requests == 1 + 1 + 6


def test_2000_generated_clients_sync_the_same_through_reports_and_rest(halo_sandbox, azurite):
    data, _ = inject_malformed(generate(2000, seed=11, today=TODAY), 10, seed=2)
    rest, report = both_ways_equal(halo_sandbox, azurite, as_tables_hold_it(data))
    assert report.rejected  # the malformed records, rejected the same way (compared above)
    assert all(report.targets.values())
    assert report.halo_requests <= 12 < rest.halo_requests


def test_auto_reads_through_reports_when_halopsa_runs_them(halo_sandbox, azurite):
    sandbox = halo_sandbox(as_tables_hold_it(demo_data(TODAY)))
    report, _ = sync(sandbox, azurite, "auto")
    assert report.read_mode == "report"
    assert report.halo_requests == 1 + 1 + 1 + 6  # token, probe, bounds, one range per table


def test_auto_reads_through_rest_when_halopsa_refuses_reports(halo_sandbox, azurite):
    refused = Faults(fail=[{"resource": "Report", "status": 403}])
    sandbox = halo_sandbox(as_tables_hold_it(demo_data(TODAY)), faults=refused)
    report, store = sync(sandbox, azurite, "auto")
    assert report.read_mode == "rest"
    assert stored(store)["SentinelOne"]
    runs = store.recent_runs(1)
    assert runs[0]["read_mode"] == "rest"
