"""Asset population against Azurite and both sandboxes: plan, apply, idempotency, faults, the cap.

The data set is built here, not taken from the demo, so every expectation is visible:

    client 1 "Alpha Ltd" (tenant 2)          client 2 "Beta Ltd" (tenant 3)
    sites 10 Head Office, 11 Branch          site 20 Main
    user 100 alice (site 11)                 user 200 bob (site 20)
    asset 1 ALPHA-WS01 serial SER-A2 (human) assets 3, 4 both named BETA-PC (human)
    asset 2 ALPHA-WS03 (human)               asset 5 BETA-SRV (human)
    asset 6 ALPHA-OLD, ours, ImmyBot id 999
    computer 1 ALPHA-LT02 SER-A2   -> asset 1 by serial (a link: name stays ALPHA-WS01)
    computer 2 ALPHA-WS03 "To be filled by O.E.M." -> asset 2 by name (a link)
    computer 3 ALPHA-NEW1 alice    -> created at site 11 (alice's)
    computer 4 ALPHA-NEW2          -> created at site 10 (the client's default)
    computer 5 BETA-PC             -> ambiguous: two assets for one computer
    computers 6, 7 BETA-SRV        -> ambiguous: one asset for two computers
    computer 8 BETA-NEW1 bob       -> created at site 20
    client 3 "Gamma Ltd" has no tenant: computer 9 of the MSP tenant is never looked at.
    asset 6 carries computer 999, which ImmyBot does not have: "gone", never touched.
"""

from __future__ import annotations

import asyncio
import json

import azure.functions as func
import pytest

from sandbox.halo_data import HaloDataSet
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import ImmyDataSet
from shared.core.mapping import MatchKind, TenantMatch
from shared.core.site_links import AMBIGUOUS, NO_ASSET
from shared.core.targets import Snapshot
from shared.records.halo import Client
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings, get_store
from shared.store.site_links import read_site_links
from shared.sync.asset_hold import asset_hold
from shared.sync.asset_store import read_plan
from shared.sync.assets import mapped_clients
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from tests.conftest import immy_settings
from tests.registry import handler

pytestmark = pytest.mark.integration

TYPE, SERIAL, IMMY_ID, MARKER = 1, 117, 150, 151
ASSET_SETTINGS = {
    "ASSET_SYNC": "plan",
    "ASSET_TYPE_ID": str(TYPE),
    "ASSET_NAME_FIELD": "101",
    "ASSET_SERIAL_FIELD": str(SERIAL),
    "ASSET_ID_FIELD": str(IMMY_ID),
    "ASSET_MARKER_FIELD": str(MARKER),
    "ASSET_WRITE_BATCH": "2",
}


def halo_data() -> HaloDataSet:
    data = HaloDataSet()
    for cid, name in ((1, "Alpha Ltd"), (2, "Beta Ltd"), (3, "Gamma Ltd")):
        data.clients.append({"id": cid, "name": name, "inactive": False})
    for sid, cid, name in (
        (10, 1, "Head Office"),
        (11, 1, "Branch"),
        (20, 2, "Main"),
        (30, 3, "HQ"),
    ):
        data.sites.append({"id": sid, "name": name, "client_id": cid, "inactive": False})
    # One of each billing record, so no guard ever sees an empty record type.
    data.contracts.append(
        {"id": 1, "client_id": 1, "ref": "C1", "contracttype_name": "Managed Security",
         "start_date": "2020-01-01T00:00:00", "active": True}
    )  # fmt: skip
    data.items.append({"id": 1, "name": "SentinelOne Complete"})
    data.invoices.append(
        {"id": 1, "client_id": 1, "disabled": False,
         "lines": [{"id": 1, "_itemid": 1, "qty_order": 1, "unit_price": 1.0}]}
    )  # fmt: skip
    data.users += [
        {"id": 100, "name": "Alice A", "emailaddress": "alice@alpha.example", "client_id": 1,
         "site_id": 11, "inactive": False},
        {"id": 200, "name": "Bob B", "emailaddress": "bob@beta.example", "client_id": 2,
         "site_id": 20, "inactive": False},
    ]  # fmt: skip

    def asset(aid: int, cid: int, sid: int, name: str, **fields: str) -> dict:
        ids = {"serial": SERIAL, "immy": IMMY_ID, "marker": MARKER}
        return {
            "id": aid,
            "inventory_number": f"INV-{aid}",
            "key_field": name,
            "client_id": cid,
            "site_id": sid,
            "assettype_id": TYPE,
            "assettype_name": "Workstation",
            "inactive": False,
            "notes": "curated by a human",
            "fields": [{"id": ids[k], "value": v} for k, v in fields.items()],
        }

    data.assets += [
        asset(1, 1, 10, "ALPHA-WS01", serial="SER-A2"),
        asset(2, 1, 10, "ALPHA-WS03"),
        asset(3, 2, 20, "BETA-PC"),
        asset(4, 2, 20, "beta-pc"),
        asset(5, 2, 20, "BETA-SRV"),
        asset(6, 1, 10, "ALPHA-OLD", immy="999", marker="created by halo-immy"),
    ]
    return data


def immy_data(extra: int = 0) -> ImmyDataSet:
    data = ImmyDataSet()
    for tid, name, msp in ((1, "MSP", True), (2, "Alpha Ltd", False), (3, "Beta Ltd", False)):
        data.tenants.append({"id": tid, "name": name, "active": True, "isMsp": msp})
    rows = [
        (1, 2, "ALPHA-LT02", "SER-A2", None),
        (2, 2, "ALPHA-WS03", "To be filled by O.E.M.", None),
        (3, 2, "ALPHA-NEW1", "SER-N1", "Alice@Alpha.example"),
        (4, 2, "ALPHA-NEW2", "", None),
        (5, 3, "BETA-PC", "SER-B5", None),
        (6, 3, "BETA-SRV", "SER-B6", None),
        (7, 3, "BETA-SRV", "SER-B7", None),
        (8, 3, "BETA-NEW1", "SER-B8", "bob@beta.example"),
        (9, 1, "MSP-SRV01", "SER-M9", None),
    ]
    rows += [(100 + n, 2, f"ALPHA-BULK{n:02d}", f"SER-X{n:02d}", None) for n in range(extra)]
    for cid, tid, name, serial, email in rows:
        data.computers.append(
            {
                "id": cid,
                "computerName": name,
                "tenantId": tid,
                "isOnline": True,
                "serialNumber": serial,
                "primaryUserEmail": email,
            }
        )
    return data


@pytest.fixture
def world(configure, halo_sandbox, monkeypatch):
    """Both sandboxes and Azurite, the app configured for them; yields (halo, set_mode)."""
    forget_applications()
    halo = halo_sandbox(halo_data())
    immy = ImmyBotSandbox(immy_data()).start()
    configure(halo.url, **immy_settings(immy), **ASSET_SETTINGS)

    def setting(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    yield halo, immy, setting
    immy.stop()
    forget_applications()


def sync() -> SyncReport:
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error
    return report


def by_id(halo) -> dict[int, dict]:
    return {a["id"]: a for a in halo.assets.records()}


def fields(asset: dict) -> dict[int, str]:
    return {f["id"]: f["value"] for f in asset["fields"]}


def immybot_ids(halo) -> list[int]:
    return sorted(int(fields(a)[IMMY_ID]) for a in halo.assets.records() if IMMY_ID in fields(a))


def plan_http(**params) -> tuple[int, dict]:
    request = func.HttpRequest("GET", "/api/assets/plan", body=b"", params=params)
    response = handler("assets_plan")(request)
    return response.status_code, json.loads(response.get_body())


def test_plan_writes_nothing_and_says_what_apply_would_do(world):
    halo, _, _ = world
    before = halo.assets.records()
    report = sync()
    assert halo.assets.posts == 0
    assert halo.assets.records() == before
    assert report.assets is not None
    assert report.assets["outcome"] == "planned"
    assert report.assets["totals"] == {
        "clients": 2, "computers": 8, "matched": 2, "creates": 3, "updates": 0, "links": 2,
        "ambiguous": 2, "gone": 1, "unresolved": 0,
    }  # fmt: skip
    status, body = plan_http()
    assert status == 200
    alpha, beta = body["clients"]
    assert sorted((c["computer_id"], c["site_id"], c["site_from"]) for c in alpha["creates"]) == [
        (3, 11, "primary_user"),
        (4, 10, "client_default"),
    ]
    assert sorted((u["asset_id"], u["computer_id"]) for u in alpha["links"]) == [(1, 1), (2, 2)]
    assert alpha["gone"] == [
        {"asset_id": 6, "computer_id": 999, "name": "ALPHA-OLD", "owned": True}
    ]
    assert sorted((a["by"], a["computer_ids"], a["asset_ids"]) for a in beta["ambiguous"]) == [
        ("name", [5], [3, 4]),
        ("name", [6, 7], [5]),
    ]
    assert [c["computer_id"] for c in beta["creates"]] == [8]
    status, only_beta = plan_http(client_id="2")
    assert status == 200 and [c["client_id"] for c in only_beta["clients"]] == [2]
    assert plan_http(client_id="x")[0] == 400


def current_links():
    pointer = get_store().current()
    assert pointer is not None
    found = read_site_links(get_store(), pointer.generation)
    assert found is not None
    return found


def test_every_run_that_lists_assets_keeps_where_the_matched_computers_are(world):
    _, _, setting = world
    report = sync()  # plan mode: nothing written to HaloPSA, the links kept all the same
    summary, links = current_links()
    assert (summary.run_id, summary.computers, summary.placed) == (report.run_id, 8, 2)
    assert {c: (k.site_id, k.asset_id, k.matched_by) for c, k in links.items() if k.site_id} == {
        1: (10, 1, "serial"),
        2: (10, 2, "name"),
    }
    assert {c: k.note for c, k in links.items() if not k.site_id} == {
        3: NO_ASSET, 4: NO_ASSET, 5: AMBIGUOUS, 6: AMBIGUOUS, 7: AMBIGUOUS, 8: NO_ASSET,
    }  # fmt: skip
    setting(ASSET_SYNC="apply")
    sync()  # the links come from the listing before this run's writes
    assert {c: k.site_id for c, k in current_links()[1].items() if k.site_id} == {1: 10, 2: 10}
    sync()  # the assets created and linked last run now carry the computers' ids
    assert {c: (k.site_id, k.matched_by) for c, k in current_links()[1].items() if k.site_id} == {
        1: (10, "immybot_id"), 2: (10, "immybot_id"), 3: (11, "immybot_id"),
        4: (10, "immybot_id"), 8: (20, "immybot_id"),
    }  # fmt: skip


def test_apply_creates_exactly_the_unmatched_then_a_second_run_sends_no_write(world):
    halo, _, setting = world
    setting(ASSET_SYNC="apply")
    before = by_id(halo)
    report = sync()
    assert report.assets is not None and report.assets["outcome"] == "applied"
    assert report.assets["written"] == {"created": 3, "updated": 0, "linked": 2}
    after = by_id(halo)
    created = {int(fields(a)[IMMY_ID]): a for aid, a in after.items() if aid not in before}
    assert sorted(created) == [3, 4, 8]
    assert {k: (a["site_id"], a["client_id"], a["key_field"]) for k, a in created.items()} == {
        3: (11, 1, "ALPHA-NEW1"),
        4: (10, 1, "ALPHA-NEW2"),
        8: (20, 2, "BETA-NEW1"),
    }
    assert all(fields(a)[MARKER] == "created by halo-immy" for a in created.values())
    assert fields(created[3])[SERIAL] == "SER-N1" and created[3]["users"][0]["id"] == 100
    assert created[4]["users"] == [] and SERIAL not in fields(created[4])

    # The serial match and the name match are linked: the ImmyBot id recorded, nothing else.
    for asset_id, computer_id in ((1, 1), (2, 2)):
        linked = dict(after[asset_id])
        assert fields(linked).pop(IMMY_ID) == str(computer_id)
        original = before[asset_id]
        assert {k: v for k, v in linked.items() if k != "fields"} == {
            k: v for k, v in original.items() if k != "fields"
        }
        assert {f["id"]: f["value"] for f in linked["fields"] if f["id"] != IMMY_ID} == fields(
            original
        )
    # Ambiguous and gone assets are untouched.
    for asset_id in (3, 4, 5, 6):
        assert after[asset_id] == before[asset_id]

    posts = halo.assets.posts
    again = sync()
    assert halo.assets.posts == posts, "a run with nothing to change sent a write"
    assert again.assets is not None and again.assets["writes"] == 0
    assert again.assets["totals"]["creates"] == 0 and again.assets["totals"]["links"] == 0
    assert immybot_ids(halo) == [1, 2, 3, 4, 8, 999]


def test_an_app_created_asset_is_refreshed_a_human_one_is_not(world):
    halo, immy, setting = world
    setting(ASSET_SYNC="apply")
    sync()
    changed = immy_data()
    for computer in changed.computers:
        if computer["id"] in (1, 3):  # 1 is linked to a human asset, 3 was created by the app
            computer["computerName"] += "-RENAMED"
    immy.set_data(changed)
    report = sync()
    assert report.assets is not None and report.assets["written"]["updated"] == 1
    names = {
        int(fields(a)[IMMY_ID]): a["key_field"]
        for a in halo.assets.records()
        if IMMY_ID in fields(a)
    }
    assert names[3] == "ALPHA-NEW1-RENAMED"
    assert names[1] == "ALPHA-WS01"


def test_a_failure_half_way_then_a_second_run_leaves_one_asset_per_computer(world):
    halo, immy, setting = world
    immy.set_data(immy_data(extra=10))  # 13 creates, 2 per request
    setting(ASSET_SYNC="apply")
    # 2 links and 7 creates go through: the request holding creates 7 and 8 saves 7, then dies.
    halo.assets.fail_writes_after(9)
    first = asyncio.run(run_sync())
    assert first.outcome is Outcome.SUCCEEDED  # the generation serves whatever assets do
    assert first.assets is not None and first.assets["outcome"] == "partial"
    assert "HTTP 500" in first.assets["error"]
    assert first.assets["written"]["created"] == 6  # what the run knows it wrote
    assert len(halo.assets.records()) == 6 + 7  # plus the one the failed request did save

    second = sync()
    assert second.assets is not None and second.assets["outcome"] == "applied"
    assert second.assets["written"]["created"] == 13 - 7
    wanted = [1, 2, 3, 4, 8, *range(100, 110), 999]
    assert immybot_ids(halo) == wanted, "some computer has no asset or more than one"
    names = [a["key_field"].casefold() for a in halo.assets.records()]
    assert len(names) - len(set(names)) == 1  # only the human's own BETA-PC / beta-pc pair


def test_more_creates_than_the_cap_are_held_until_approved(world):
    halo, _, setting = world
    setting(ASSET_SYNC="apply", ASSET_MAX_CREATES="2")
    for _ in range(2):
        report = sync()
        assert report.assets is not None and report.assets["outcome"] == "held"
        assert halo.assets.posts == 0
    hold = asset_hold(get_store())
    assert hold is not None and hold.creates == 3 and not hold.approved
    request = func.HttpRequest("GET", "/api/sync/status", body=b"", params={})
    status_body = json.loads(handler("sync_status")(request).get_body())
    last = status_body["last_runs"][0]
    assert last["outcome"] == "succeeded" and last["assets"]["outcome"] == "held"
    status, body = plan_http()
    assert status == 200 and body["summary"]["held"]["creates"] == 3

    request = func.HttpRequest("POST", "/api/sync/approve", body=b"", params={})
    assert handler("sync_approve")(request).status_code == 200
    assert halo.assets.posts == 0  # approval writes nothing itself: the next run does

    report = sync()
    assert report.assets is not None and report.assets["outcome"] == "applied"
    assert report.assets["written"]["created"] == 3
    assert asset_hold(get_store()) is None
    request = func.HttpRequest("POST", "/api/sync/approve", body=b"", params={})
    assert handler("sync_approve")(request).status_code == 409


def test_off_reads_no_asset_and_stores_no_plan(world):
    halo, _, setting = world
    setting(ASSET_SYNC="off")
    halo.reset_stats()
    report = sync()
    assert report.assets is None
    assert "Asset" not in halo.stats()["requests"]
    pointer = get_store().current()
    assert pointer is not None and read_plan(get_store(), pointer.generation) is None
    assert plan_http()[0] == 404


def test_the_listing_survives_a_capped_page_size_and_fields_only_by_type(world):
    halo, _, setting = world
    halo.assets.max_page_size = 2  # asked for 100, HaloPSA answers 2 a page
    halo.assets.fields_need_type = True
    setting(ASSET_SYNC="apply")
    sync()
    posts = halo.assets.posts
    report = sync()
    assert halo.assets.posts == posts
    assert report.assets is not None and report.assets["totals"]["creates"] == 0
    assert immybot_ids(halo) == [1, 2, 3, 4, 8, 999]


def test_the_openapi_document_describes_the_plan():
    from shared.api.openapi import openapi_document

    document = openapi_document()
    operation = document["paths"]["/assets/plan"]["get"]
    assert operation["operationId"] == "getAssetPlan"
    schemas = document["components"]["schemas"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AssetPlanAnswer"
    }
    assert {"client_name", "tenant_name"} <= set(schemas["NamedClientPlan"]["properties"])


def test_the_plan_names_each_client_and_its_tenant(world):
    sync()
    status, body = plan_http()
    assert status == 200
    named = [
        (c["client_id"], c["client_name"], c["tenant_id"], c["tenant_name"])
        for c in body["clients"]
    ]
    assert named == [(1, "Alpha Ltd", 2, "Alpha Ltd"), (2, "Beta Ltd", 3, "Beta Ltd")]


def test_a_client_mapped_by_its_entra_tenant_gets_its_computers_as_assets():
    kinds = {1: MatchKind.EXPLICIT, 2: MatchKind.ENTRA_TENANT, 3: MatchKind.NAME,
             4: MatchKind.AMBIGUOUS, 5: MatchKind.UNMAPPED, 6: MatchKind.IMMYBOT_LINK}  # fmt: skip
    clients = [Client(id=cid, name=f"C{cid}") for cid in kinds]
    matches = {
        cid: TenantMatch(
            client_id=cid,
            kind=kind,
            tenant_id=None if kind in (MatchKind.AMBIGUOUS, MatchKind.UNMAPPED) else cid * 10,
        )
        for cid, kind in kinds.items()
    }
    snapshot = Snapshot.build(clients, [], [], [], []).with_immybot([], matches)
    assert mapped_clients(snapshot) == {1: 10, 2: 20, 3: 30, 6: 60}
