"""ImmyBot tags per rule, end to end: both sandboxes synced into Azurite, tags read back from the
ImmyBot sandbox's state.

Demo data (sandbox/halo_data.py, sandbox/immybot_data.py): Huntress covers Contoso Ltd (client 1,
tenant 2 by name), Fabrikam (client 2, tenant 3 by name) and Wide World Importers (client 6, which
no name matches; here ImmyBot's HaloPSA link says tenant 8).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from bench.sync import immybot_requests
from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox, ImmyFaults
from sandbox.immybot_data import add_halo_link, immy_data_for
from shared.api.rules import import_rules
from shared.runtime.clients import forget_applications
from shared.settings import get_settings
from shared.store.repository import get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.conftest import immy_settings
from tests.registry import handler

pytestmark = pytest.mark.integration
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
HUNTRESS, SENTINEL = "Halo: Huntress", "Halo: SentinelOne"
OFFBOARDING = "Halo: Huntress (offboarding)"
HALO_SERVERS: list = []  # the HaloPSA sandboxes `start` began, newest last
VIP_TAG = {"id": 1, "name": "VIP", "description": "the MSP's own tag", "color": None}


def call(name: str, url: str, method: str = "GET", body: bytes = b"", route=None, **params):
    request = func.HttpRequest(method, url, body=body, params=params, route_params=route or {})
    return handler(name)(request)


def mapped_targets(software: str) -> set[int]:
    response = call("targets", "/api/targets", software=software)
    assert response.status_code == 200, response.get_body()
    return {t["immy_tenant_id"] for t in json.loads(response.get_body())["targets"]} - {None}


def tag_view() -> dict[str, dict]:
    response = call("immybot_tags", "/api/immybot/tags")
    assert response.status_code == 200, response.get_body()
    return {r["software"]: r for r in json.loads(response.get_body())["rules"]}


def put_rule(software: str, **fields) -> None:
    rules = {r["software"]: r for r in json.loads(DEMO_RULES.read_text())["rules"]}
    body = json.dumps({**rules[software], **fields}).encode()
    response = call(
        "rules", f"/api/rules/{software}", "PUT", body, {"area": "rules", "key": software}
    )
    assert response.status_code in (200, 201), response.get_body()


def sync(expected: Outcome = Outcome.SUCCEEDED):
    report = asyncio.run(run_sync())
    assert report.outcome is expected, (report.outcome, report.error, report.guard)
    return report


def writes(immy: ImmyBotSandbox) -> int:
    requests = immy.stats()["requests"]
    return requests["add_tags"] + requests["remove_tags"]


@pytest.fixture
def start(configure, halo_sandbox, monkeypatch):
    """Start both sandboxes (the ImmyBot one with a HaloPSA link and the MSP's own VIP tag on
    tenant 2), with IMMY_TAGS as given, and import the demo rules."""
    started: list[ImmyBotSandbox] = []

    def begin(mode: str, **settings: str) -> ImmyBotSandbox:
        forget_applications()
        halo_data = demo_data(datetime.now(UTC).date())
        data = immy_data_for(halo_data)
        add_halo_link(data, {1: 2, 2: 3, 6: 8, 7: None})
        data.tags.append(dict(VIP_TAG))
        contoso = next(t for t in data.tenants if t["id"] == 2)
        contoso["tenantTagIds"], contoso["tenantTagNames"] = [1], ["VIP"]
        halo = halo_sandbox(halo_data)
        HALO_SERVERS.append(halo)
        immy = ImmyBotSandbox(data).start()
        started.append(immy)
        configure(halo.url, **immy_settings(immy), IMMY_TAGS=mode, **settings)
        import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
        return immy

    yield begin
    for immy in started:
        immy.stop()
    forget_applications()


def test_apply_makes_each_managed_tag_equal_to_its_rules_targets(start):
    immy = start("apply")
    first = sync()
    # Tenants: a page and the empty one; computers: one page; the link and its clients; an
    # inventory search per detect pattern (two); tags: a read, two creates and one add-tags per
    # rule (their tenant sets differ).
    assert immybot_requests(first) == (
        "ImmyBot       : 12 requests, minimum 12 (+0.0%), 400.00 per 1,000 computers read, "
        "38 inventory rows kept"
    )
    assert first.immybot["halo_link"] == "provider link 1 (HaloPSA)"
    carried = immy.tenant_tags()
    assert carried[HUNTRESS] == mapped_targets("Huntress") == {2, 3, 8}
    assert carried[SENTINEL] == mapped_targets("SentinelOne")
    assert carried["VIP"] == {2}  # not ours: untouched
    assert {t["name"]: t["description"].startswith("[halo-immy]") for t in immy.data.tags} == {
        "VIP": False,
        HUNTRESS: True,
        SENTINEL: True,
    }
    huntress = tag_view()["Huntress"]
    assert huntress["last_apply"]["error"] is None
    assert huntress["last_apply"]["requests"] == huntress["last_apply"]["minimum_requests"]
    wwi = next(
        t
        for t in json.loads(call("targets", "/api/targets", software="Huntress").get_body())[
            "targets"
        ]
        if t["client_id"] == 6
    )
    assert (wwi["immy_tenant_id"], wwi["mapping"]) == (8, "immybot_link")

    before = writes(immy)
    report = sync()
    assert writes(immy) == before  # nothing to change: no write
    assert report.immy_tags["added"] == report.immy_tags["removed"] == 0
    assert immy.stats()["requests"]["tags"] > 0


def test_the_tags_api_shows_billed_targeted_and_installed_per_client(start):
    immy = start("plan")
    sync()
    before = immy.stats()["total"]
    view = tag_view()["SentinelOne"]
    assert view["numbers_generation"] == get_store().current().generation
    clients = {c["client_name"]: c for c in view["clients"]}
    numbers = {
        name: (c["immy_tenant_id"], c["quantity"], c["targeted"], c["installed"])
        for name, c in clients.items()
    }
    assert numbers == {
        "Contoso Ltd": (2, 25.0, 5, 2),  # the reconciliation's numbers (tests/immybot)
        "Northwind Traders": (None, 8.0, None, None),  # two tenants of its name: not mapped
        "Wide World Importers": (8, None, 6, 4),  # linked; its per-device line not calculated
        "Woodgrove Bank": (None, 40.0, None, None),  # subscriptions, last calculated 40
    }
    assert clients["Wide World Importers"]["quantity_status"] == "calculated_unknown"
    assert clients["Woodgrove Bank"]["quantity_status"] == "calculated"
    assert clients["Woodgrove Bank"]["installed_unknown"] == "the client has no ImmyBot tenant"
    assert immy.stats()["total"] == before  # the numbers come from the sync, not from ImmyBot


def test_a_held_generation_sends_no_tag_write(start):
    immy = start("apply")
    sync()
    before = writes(immy)
    # Every Managed Security contract gone: the snapshot guard holds the generation.
    halo = HALO_SERVERS[-1]
    data = halo.data
    data.contracts = [c for c in data.contracts if c.get("contracttype_name") != "Managed Security"]
    halo.set_data(data)
    sync(Outcome.HELD)
    assert writes(immy) == before
    assert immy.tenant_tags()[HUNTRESS] == {2, 3, 8}


def test_a_client_losing_coverage_loses_the_tag_and_gains_the_offboarding_tag(start):
    immy = start("apply", SYNC_MAX_DROP="0.5")
    put_rule("Huntress", offboard_days=30)
    sync()
    assert OFFBOARDING not in immy.tenant_tags()  # created only once someone needs it
    put_rule("Huntress", offboard_days=30, exclude_clients=[2])  # Fabrikam, tenant 3
    sync()
    carried = immy.tenant_tags()
    assert carried[HUNTRESS] == {2, 8}
    assert carried[OFFBOARDING] == {3}
    assert carried["VIP"] == {2}
    before = writes(immy)
    sync()  # still inside the window: nothing moves
    assert writes(immy) == before
    put_rule("Huntress", offboard_days=30)  # covered again: back on the tag, off the offboarding
    sync()
    carried = immy.tenant_tags()
    assert carried[HUNTRESS] == {2, 3, 8} and carried[OFFBOARDING] == set()


def test_a_mass_removal_is_held_until_approved(start):
    immy = start("apply")
    sync()
    put_rule("Huntress", exclude_clients=[1, 2])  # two of three tenants would lose the tag
    report = sync()
    assert report.immy_tags["held"] == [HUNTRESS]
    assert immy.tenant_tags()[HUNTRESS] == {2, 3, 8}
    held = tag_view()["Huntress"]["held"]
    assert (held["carrying"], held["should"], held["removing"]) == (3, 1, 2)
    approve = func.HttpRequest("POST", "/api/sync/approve", body=b"", params={"tag": "Huntress"})
    answer = handler("sync_approve")(approve)
    assert answer.status_code == 200, answer.get_body()
    sync()
    assert immy.tenant_tags()[HUNTRESS] == {8}
    assert tag_view()["Huntress"]["held"] is None


def test_plan_writes_nothing_and_shows_what_apply_then_does(start, monkeypatch):
    immy = start("plan")
    sync()
    assert writes(immy) == 0 and [t["name"] for t in immy.data.tags] == ["VIP"]
    planned = {
        (change["tag"], tenant)
        for rule in tag_view().values()
        for change in rule["changes"]
        for tenant in change["add"]
    }
    assert planned
    monkeypatch.setenv("IMMY_TAGS", "apply")
    get_settings.cache_clear()
    sync()
    names = {t["id"]: t["name"] for t in immy.data.tags}
    made = {
        (names[tag], tenant)
        for endpoint, tenants, tags in immy.tag_writes
        if endpoint == "add_tags"
        for tenant in tenants
        for tag in tags
    }
    assert made == planned
    assert not [w for w in immy.tag_writes if w[0] == "remove_tags"]


def test_a_site_scoped_rule_is_warned_about_and_not_tagged(start):
    immy = start("apply")
    sync()
    rules = {r["software"]: r for r in json.loads(DEMO_RULES.read_text())["rules"]}
    body = json.dumps({**rules["Huntress"], "site_ids": [1]}).encode()
    response = call(
        "rules", "/api/rules/Huntress", "PUT", body, {"area": "rules", "key": "Huntress"}
    )
    assert any(w.startswith("site-scoped") for w in json.loads(response.get_body())["warnings"])
    catalog = json.loads(call("catalog", "/api/catalog").get_body())
    assert list(catalog["rule_warnings"]) == ["Huntress"]
    before = writes(immy)
    sync()
    huntress = tag_view()["Huntress"]
    assert huntress["tag"] is None and huntress["changes"] == []
    assert {s["note"] for s in huntress["site_scope"]} == {"site scope: not tagged"}
    assert writes(immy) == before  # the old tag is left as it was


def test_an_immybot_error_mid_way_is_finished_by_the_next_run(start):
    immy = start("apply")
    immy.set_faults(ImmyFaults(tag_writes_before_error=1))  # one add-tags, then 503s
    report = sync()  # the snapshot is current all the same
    assert "HTTP 503" in report.immy_tags["error"]
    assert len(immy.tag_writes) == 1
    immy.set_faults(ImmyFaults())
    sync()
    carried = immy.tenant_tags()
    assert carried[HUNTRESS] == mapped_targets("Huntress")
    assert carried[SENTINEL] == mapped_targets("SentinelOne")
    assert len(immy.tag_writes) == 2  # only what was left
