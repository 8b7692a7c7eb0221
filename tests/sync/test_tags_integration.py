"""ImmyBot tags per rule, end to end: both sandboxes synced into Azurite, tags read back from the
ImmyBot sandbox's state.

Demo data (sandbox/halo_data.py, sandbox/immybot_data.py): Huntress covers Contoso Ltd (client 1,
tenant 2 by name), Fabrikam (client 2, tenant 3 by name) and Wide World Importers (client 6, which
no name matches; here ImmyBot's HaloPSA link says tenant 8).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import azure.functions as func
import pytest

from bench.sync import immybot_requests
from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox, ImmyFaults
from sandbox.immybot_data import add_halo_link, immy_data_for
from shared.api.rules import import_rules
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings, get_store
from shared.sync.runs import Outcome
from tests.conftest import immy_settings
from tests.registry import handler
from tests.sync.tag_runs import DEMO_RULES, call, mapped_targets, put_rule, sync, tag_view, writes

pytestmark = pytest.mark.integration
HUNTRESS, SENTINEL = "Halo: Huntress", "Halo: SentinelOne"
OFFBOARDING = "Halo: Huntress (offboarding)"
HALO_SERVERS: list = []  # the HaloPSA sandboxes `start` began, newest last
VIP_TAG = {"id": 1, "name": "VIP", "description": "the MSP's own tag", "color": None}


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
        "ImmyBot       : 12 requests, minimum 12 (+0.0%), 363.64 per 1,000 computers read, "
        "42 inventory rows kept"
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


def test_the_tags_answer_names_every_tenant_it_lists(start):
    start("plan")
    sync()
    view = tag_view()
    huntress = view["Huntress"]
    assert huntress["should"] == [2, 3, 8]
    assert huntress["tenant_names"] == {
        "2": "Contoso Limited",
        "3": "Fabrikam Inc",
        "8": "World Wide Importers",
    }
    # The demo's site-scoped rule: Woodgrove Bank, which no tenant holds (null, not a guess).
    scoped = view["Microsoft 365 Apps"]["site_scope"]
    assert [(s["client_name"], s["immy_tenant_id"], s["immy_tenant_name"]) for s in scoped] == [
        ("Woodgrove Bank", None, None)
    ]


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
        "Northwind Traders": (4, 8.0, 3, 2),  # tenant 4, by its Entra tenant
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


def test_a_site_scoped_rule_without_computer_sites_is_warned_about_and_not_tagged(start):
    immy = start("apply")  # ASSET_SYNC off: nothing says where a computer is
    sync()
    put_rule("Huntress", site_ids=[1])
    catalog = json.loads(call("catalog", "/api/catalog").get_body())
    # The demo's own site-scoped rule (Microsoft 365 Apps) carries the same warning.
    assert list(catalog["rule_warnings"]) == ["Huntress", "Microsoft 365 Apps"]
    assert [w[:12] for w in catalog["rule_warnings"]["Huntress"]] == ["site-scoped:"]
    before = writes(immy)
    sync()
    huntress = tag_view()["Huntress"]
    assert (huntress["level"], huntress["changes"]) == ("computer", [])
    assert huntress["problem"].startswith("no computer-to-site links")
    assert writes(immy) == before  # the tenant tag is left as it was, nothing guessed


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


def test_the_tags_view_shows_each_clients_last_change_of_the_rule(start):
    start("plan", SYNC_MAX_DROP="0.5")
    first = sync()
    huntress = tag_view()["Huntress"]["last_changes"]
    assert {(c["client_id"], c["immy_tenant_id"], c["change"]) for c in huntress} == {
        (1, 2, "became"),
        (2, 3, "became"),
        (6, 8, "became"),
    }
    assert {c["cause"]["id"] for c in huntress} == {first.run_id}
    # Fabrikam's Managed Security contract is deleted in HaloPSA.
    halo = HALO_SERVERS[-1]
    data = halo.data
    data.contracts = [c for c in data.contracts if int(float(c["id"])) != 3]
    halo.set_data(data)
    second = sync()
    huntress = tag_view()["Huntress"]["last_changes"]
    newest = huntress[0]
    assert (newest["client_id"], newest["immy_tenant_id"], newest["change"]) == (2, 3, "stopped")
    assert newest["cause"] == {"kind": "sync", "id": second.run_id}
    assert len(huntress) == 3  # one per client: Fabrikam's became is no longer its last
    assert {c["client_id"] for c in tag_view()["SentinelOne"]["last_changes"]} == {1, 3, 6, 7}
