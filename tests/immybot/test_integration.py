"""HaloPSA and ImmyBot sandboxes synced into Azurite: tenants on targets, computers, reconciliation.

Expectations are computed by hand from the demo data sets' tables (sandbox/halo_data.py and
sandbox/immybot_data.py docstrings).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox, ImmyFaults
from sandbox.immybot_data import flag_computers, immy_data_for
from shared.api.rules import import_rules
from shared.core.installed import InventoryState
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_store
from shared.store.generations import read_computers, read_manifest
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.conftest import immy_settings
from tests.registry import handler

pytestmark = pytest.mark.integration
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"


@pytest.fixture
def both(configure, halo_sandbox):
    forget_applications()
    halo_data = demo_data(datetime.now(UTC).date())
    halo = halo_sandbox(halo_data)
    immy = ImmyBotSandbox(immy_data_for(halo_data)).start()
    configure(halo.url, **immy_settings(immy))
    import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    yield halo, immy
    immy.stop()
    forget_applications()


def call(name: str, url: str, method: str = "GET", body: bytes = b"", route=None, **params):
    request = func.HttpRequest(method, url, body=body, params=params, route_params=route or {})
    return handler(name)(request)


def targets(software: str, **params) -> dict:
    response = call("targets", "/api/targets", software=software, **params)
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def by_name(body: dict) -> dict[str, dict]:
    return {t["client_name"]: t for t in body["targets"]}


def test_targets_carry_their_immybot_tenant_or_say_why_not(both):
    huntress = targets("Huntress")
    assert huntress["immybot_configured"] is True
    got = {n: (t["immy_tenant_id"], t["mapping"]) for n, t in by_name(huntress).items()}
    assert got == {
        "Contoso Ltd": (2, "name"),
        "Fabrikam, Inc.": (3, "name"),
        "Wide World Importers": (None, "unmapped"),
    }
    assert [(u["client_name"], u["mapping"]) for u in huntress["unmapped"]] == [
        ("Wide World Importers", "unmapped")
    ]
    sentinel = targets("SentinelOne")
    # Northwind's two tenants share a name; its Entra tenant (in capitals in HaloPSA) picks one.
    northwind = by_name(sentinel)["Northwind Traders"]
    assert (northwind["immy_tenant_id"], northwind["mapping"]) == (4, "entra_tenant")
    assert northwind["immy_tenant_name"] == "Northwind Traders"
    # Woodgrove's Entra tenant is linked to two ImmyBot tenants: ambiguous, though one has its name.
    gaps = {u["client_name"]: u for u in sentinel["unmapped"]}
    assert set(gaps) == {"Wide World Importers", "Woodgrove Bank"}
    assert (gaps["Woodgrove Bank"]["mapping"], gaps["Woodgrove Bank"]["candidates"]) == (
        "ambiguous",
        [11, 12],
    )
    assert "Microsoft Entra tenant 9a8b7c6d-" in gaps["Woodgrove Bank"]["detail"]


def test_expand_computers_lists_each_tenants_computers(both):
    body = targets("Huntress", expand="computers")
    assert sorted(body["computers"]) == ["2", "3"]
    assert len(body["computers"]["2"]) == 5  # Contoso Limited
    assert len(body["computers"]["3"]) == 4  # Fabrikam Inc
    assert {c["tenant_id"] for c in body["computers"]["2"]} == {2}
    plain = call("targets", "/api/targets", software="Huntress")
    expanded = call("targets", "/api/targets", software="Huntress", expand="computers")
    assert plain.headers["ETag"] != expanded.headers["ETag"]


def test_reconciliation_puts_billed_targeted_and_installed_side_by_side(both):
    _, immy = both
    before = immy.stats()["total"]
    response = call("reconciliation", "/api/reconciliation", software="SentinelOne")
    report = json.loads(response.get_body())
    rows = {r["client_name"]: r for r in report["rows"]}
    contoso = rows["Contoso Ltd"]
    # Contoso is billed 25 SentinelOne seats at 6.00; tenant 2 has 5 deployable computers seen
    # lately, and ImmyBot's inventory shows "Sentinel Agent" on two of them (ids 4 and 5).
    assert (contoso["quantity"], contoso["targeted"], contoso["installed"]) == (25, 5, 2)
    assert contoso["quantity_status"] == "fixed" and contoso["installed_unknown"] is None
    # The documented signs: installed - quantity, and its money, negative for empty seats.
    assert (contoso["installed_minus_quantity"], contoso["targeted_minus_installed"]) == (-23, 3)
    assert (contoso["unit_price"], contoso["at_stake"]) == (6.0, -138.0)
    assert report["rows"][0]["client_name"] == "Contoso Ltd"  # most money at stake first
    assert rows["Woodgrove Bank"]["targeted"] is None  # ambiguous: no tenant to count in
    assert rows["Woodgrove Bank"]["installed_unknown"] == "the client has no ImmyBot tenant"
    assert rows["Northwind Traders"]["targeted"] == 3  # tenant 4, by its Entra tenant
    assert report["totals"]["unmapped_clients"] == 2
    assert report["detect"] == ["Sentinel Agent"] and report["stale_days"] == 30
    csv_response = call(
        "reconciliation", "/api/reconciliation", software="SentinelOne", format="csv"
    )
    assert csv_response.mimetype == "text/csv"
    lines = list(csv.DictReader(io.StringIO(csv_response.get_body().decode())))
    assert lines[0]["client_name"] == "Contoso Ltd" and lines[0]["at_stake"] == "-138.0"
    assert (lines[0]["quantity"], lines[0]["targeted"], lines[0]["installed"]) == ("25.0", "5", "2")
    assert immy.stats()["total"] == before  # answered without calling ImmyBot


def test_an_explicit_mapping_takes_effect_at_once(both):
    response = call(
        "rules",
        "/api/mappings/6",
        "PUT",
        json.dumps({"immy_tenant_id": 8, "note": "renamed in ImmyBot"}).encode(),
        route={"area": "mappings", "key": "6"},
    )
    assert response.status_code == 201
    wwi = by_name(targets("Huntress"))["Wide World Importers"]
    assert (wwi["immy_tenant_id"], wwi["mapping"]) == (8, "explicit")
    report = json.loads(
        call("reconciliation", "/api/reconciliation", software="SentinelOne").get_body()
    )
    row = next(r for r in report["rows"] if r["client_name"] == "Wide World Importers")
    # Its SentinelOne line is per device, not yet calculated: "calculated", never 0 billed;
    # tenant 8's six computers are targeted, four carry the agent (ids 23, 25, 26, 28).
    assert (row["quantity"], row["quantity_status"], row["calculated_unknown"]) == (
        None,
        "calculated_unknown",
        1,
    )
    assert (row["targeted"], row["installed"], row["at_stake"]) == (6, 4, None)
    listed = json.loads(call("rules", "/api/mappings", route={"area": "mappings"}).get_body())
    assert listed["explicit"] == [
        {
            "halo_client_id": 6,
            "halo_client_name": "Wide World Importers",
            "immy_tenant_id": 8,
            "immy_tenant_name": "World Wide Importers",
            "note": "renamed in ImmyBot",
        }
    ]
    removed = call("rules", "/api/mappings/6", "DELETE", route={"area": "mappings", "key": "6"})
    assert removed.status_code == 204
    assert by_name(targets("Huntress"))["Wide World Importers"]["immy_tenant_id"] is None


def test_a_rule_edited_after_a_mapping_resolves_with_the_new_mapping(both):
    # The mapping change keeps the remapped snapshot for the next edit: it must be the new one.
    mapped = call(
        "rules",
        "/api/mappings/6",
        "PUT",
        json.dumps({"immy_tenant_id": 8}).encode(),
        route={"area": "mappings", "key": "6"},
    )
    assert mapped.status_code == 201
    edited = handler("rules")(
        func.HttpRequest(
            "PATCH",
            "/api/rules/Huntress",
            body=json.dumps({"offboard_days": 21}).encode(),
            headers={"Content-Type": "application/merge-patch+json"},
            route_params={"area": "rules", "key": "Huntress"},
        )
    )
    assert edited.status_code == 200, edited.get_body()
    wwi = by_name(targets("Huntress"))["Wide World Importers"]
    assert (wwi["immy_tenant_id"], wwi["mapping"]) == (8, "explicit")


def test_the_mapping_answers_name_every_client_and_tenant(both):
    listed = json.loads(call("rules", "/api/mappings", route={"area": "mappings"}).get_body())
    outcomes = {o["client_id"]: o for o in listed["outcomes"]}
    contoso, northwind = outcomes[1], outcomes[3]
    assert (contoso["client_name"], contoso["tenant_id"], contoso["tenant_name"]) == (
        "Contoso Ltd",
        2,
        "Contoso Limited",
    )
    assert (northwind["client_name"], northwind["kind"]) == ("Northwind Traders", "entra_tenant")
    assert (northwind["tenant_id"], northwind["tenant_name"]) == (4, "Northwind Traders")
    woodgrove = outcomes[7]
    assert (woodgrove["client_name"], woodgrove["kind"]) == ("Woodgrove Bank", "ambiguous")
    assert woodgrove["tenant_name"] is None and set(woodgrove["candidate_names"]) == {"11", "12"}
    # A tenant the snapshot does not hold is named null, never guessed; so is a client.
    for client, tenant, names in (
        (7, 99, ("Woodgrove Bank", None)),
        (99, 2, (None, "Contoso Limited")),
    ):
        put = call(
            "rules",
            f"/api/mappings/{client}",
            "PUT",
            json.dumps({"immy_tenant_id": tenant}).encode(),
            route={"area": "mappings", "key": str(client)},
        )
        assert put.status_code == 201, put.get_body()
        answer = json.loads(put.get_body())
        assert (answer["halo_client_name"], answer["immy_tenant_name"]) == names
    listed = json.loads(call("rules", "/api/mappings", route={"area": "mappings"}).get_body())
    assert [(m["halo_client_name"], m["immy_tenant_name"]) for m in listed["explicit"]] == [
        ("Woodgrove Bank", None),
        (None, "Contoso Limited"),
    ]


def test_status_reports_immybot(both):
    status = json.loads(call("sync_status", "/api/sync/status").get_body())
    assert status["immybot"] == {"configured": True, "tenants": 11, "computers": 33, "note": None}


def software_of(computers: list) -> dict[int, list[str]]:
    return {c.id: [s.name for s in c.software] for c in computers}


def test_the_sync_reads_the_inventory_once_per_detect_pattern_and_stores_it(both):
    _, immy = both
    # Demo rules: Huntress detects "Huntress Agent", SentinelOne "Sentinel Agent": two searches
    # across every tenant, not a request per computer.
    requests = immy.stats()["requests"]
    assert (requests["inventory_search"], requests["detected_software"]) == (2, 0)
    pointer = get_store().current()
    manifest, _ = read_manifest(get_store(), pointer.generation)
    # 22 of the 33 demo computers carry Huntress Agent, 20 Sentinel Agent (immybot_data.py:
    # not ids divisible by 4, or by 3, and never ids ending in 7).
    assert manifest.immybot.inventory == InventoryState(
        searched=["Huntress Agent", "Sentinel Agent"], rows=42
    )
    contoso = software_of(read_computers(get_store(), pointer.generation, 2))
    assert contoso == {
        3: ["Huntress Agent"],
        4: ["Sentinel Agent"],
        5: ["Huntress Agent", "Sentinel Agent"],
        6: ["Huntress Agent"],
        7: [],  # never inventoried
    }


def test_a_refused_inventory_search_costs_only_installed(both):
    _, immy = both
    immy.set_faults(ImmyFaults(deny=["inventory_search"]))
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    inventory = report.immybot["inventory"]
    assert inventory["searched"] == [] and inventory["rows"] == 0
    assert set(inventory["failed"]) == {"Huntress Agent", "Sentinel Agent"}
    assert "HTTP 403" in inventory["failed"]["Sentinel Agent"]
    assert report.immybot["computers"] == 33 and report.immybot["note"] is None


def test_immybot_down_carries_the_previous_generation_over(both):
    _, immy = both
    immy.stop()
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    assert "ImmyBot unavailable" in report.immybot["note"]
    assert by_name(targets("Huntress"))["Contoso Ltd"]["immy_tenant_id"] == 2
    # The inventory comes over with the computers, and says from where.
    assert report.immybot["inventory"]["searched"] == ["Huntress Agent", "Sentinel Agent"]
    assert report.immybot["inventory"]["note"].startswith("from generation ")
    pointer = get_store().current()
    assert software_of(read_computers(get_store(), pointer.generation, 2))[4] == ["Sentinel Agent"]


def test_the_tab_lists_the_ticket_users_computer_first(both):
    request = func.HttpRequest(
        "GET", "/api/technician-tab/ticket/1", body=b"", route_params={"ticket_id": "1"}
    )
    html = asyncio.run(handler("technician_tab")(request)).get_body().decode()
    _, immy = both
    first_row = html.split('<tr class="mine">', 1)[1].split("</tr>", 1)[0]
    assert "CONTOSO-LT01" in first_row
    assert f'href="{immy.url}/computers/' in first_row
    assert 'target="_blank" rel="noopener noreferrer"' in first_row
    assert "ImmyBot tenant Contoso Limited" in html


def test_paging_past_the_server_cap_and_counting_only_active_deployable_computers(
    configure, halo_sandbox
):
    forget_applications()
    halo_data = demo_data(datetime.now(UTC).date())
    data = immy_data_for(halo_data)
    template = next(c for c in data.computers if c["tenantId"] == 7)
    for n in range(31, 251):  # 250 computers; the server answers at most 100 per page
        data.computers.append({**template, "id": n, "computerName": f"AW-EXTRA{n:03d}"})
    flag_computers(data, [3], sandbox=True)  # three of Contoso's five
    flag_computers(data, [4], dev_lab=True)
    flag_computers(data, [5], excluded=True)
    fabrikam_lt01 = next(c for c in data.computers if c["id"] == 8)
    fabrikam_lt01["lastProviderAgentEventDateUtc"] = "2020-01-01T00:00:00Z"  # long gone: stale
    halo = halo_sandbox(halo_data)
    with ImmyBotSandbox(data, max_take=100) as immy:
        configure(halo.url, **immy_settings(immy))
        import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
        report = asyncio.run(run_sync())
        assert report.outcome is Outcome.SUCCEEDED, report.error
        assert report.immybot["computers"] == 250
        assert immy.stats()["requests"]["computers"] == 3
    forget_applications()
    body = json.loads(call("reconciliation", "/api/reconciliation", software="Huntress").get_body())
    rows = {r["client_name"]: r for r in body["rows"]}
    contoso, fabrikam = rows["Contoso Ltd"], rows["Fabrikam, Inc."]
    assert (contoso["targeted"], contoso["stale"], contoso["not_deployable"]) == (2, 0, 3)
    assert (fabrikam["targeted"], fabrikam["stale"], fabrikam["not_deployable"]) == (3, 1, 0)
    # Installed counts the flagged and the stale computers too: Huntress on 3, 5, 6 and on 8-10.
    assert (contoso["installed"], fabrikam["installed"]) == (3, 3)
    assert body["totals"]["not_deployable"] == 3 and body["totals"]["stale"] == 1


def test_immybot_losing_half_its_mapped_tenants_is_held(both):
    _halo, immy = both
    data = immy.data
    # A permission change on ImmyBot's side: Contoso's and Fabrikam's tenants vanish.
    kept = [t for t in data.tenants if t["id"] not in (2, 3)]
    computers = [c for c in data.computers if c["tenantId"] not in (2, 3)]
    immy.set_data(type(data).from_json({**data.to_json(), "tenants": kept, "computers": computers}))
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.HELD, report.error
    assert report.guard["mapped_targets"]["huntress"] == {
        "before": 2,
        "after": 0,
        "dropped": 2,
        "share": 1.0,
    }
    assert report.guard["mapped_tenants"]["dropped"] == 2
    assert "targets" not in report.guard  # HaloPSA's coverage did not change, only the mapping
    # The previous generation still serves, with its tenants.
    got = {n: t["immy_tenant_id"] for n, t in by_name(targets("Huntress")).items()}
    assert got["Contoso Ltd"] == 2 and got["Fabrikam, Inc."] == 3
