"""The HaloPSA sandbox's stateful assets over HTTP: listings, array POSTs, faults mid-write."""

from __future__ import annotations

import httpx
import pytest

from sandbox.halo_data import HaloDataSet


def data() -> HaloDataSet:
    halo = HaloDataSet()
    halo.clients += [{"id": 1, "name": "A"}, {"id": 2, "name": "B"}]
    halo.sites += [
        {"id": 10, "name": "HQ", "client_id": 1, "client_name": "A"},
        {"id": 20, "name": "Main", "client_id": 2, "client_name": "B"},
    ]
    halo.users.append({"id": 5, "name": "Ann", "client_id": 1, "site_id": 10})
    halo.assets += [
        {"id": 3, "key_field": "PC-3", "client_id": 1, "site_id": 10, "assettype_name": "Laptop"},
        {"id": 1, "key_field": "PC-1", "client_id": 1, "site_id": 10, "assettype_id": 7,
         "notes": "kept", "fields": [{"id": 117, "value": "S1"}]},
        {"id": 2, "key_field": "OLD", "client_id": 2, "site_id": 20, "inactive": True},
    ]  # fmt: skip
    return halo


@pytest.fixture
def api(halo_sandbox):
    sandbox = halo_sandbox(data())
    with httpx.Client(base_url=sandbox.url) as http:
        token = http.post(
            "/auth/token",
            data={"grant_type": "client_credentials", "client_id": "sandbox-client",
                  "client_secret": "sandbox-secret"},
        ).json()["access_token"]  # fmt: skip
        http.headers["Authorization"] = f"Bearer {token}"
        yield sandbox, http


def test_listing_pages_filters_and_includes_fields_and_users_only_when_asked(api):
    _, http = api
    plain = http.get("/api/Asset").json()
    assert [a["id"] for a in plain["assets"]] == [1, 3]  # in id order, inactive left out
    assert "fields" not in plain["assets"][0] and "users" not in plain["assets"][0]
    page = http.get(
        "/api/Asset",
        params={"includeinactive": "true", "includeassetfields": "true", "includeuser": "true",
                "pageinate": "true", "page_size": "2", "page_no": "2"},
    ).json()  # fmt: skip
    assert (page["record_count"], page["page_no"], [a["id"] for a in page["assets"]]) == (3, 2, [3])
    assert page["assets"][0]["fields"] == [{"id": 101, "name": "Name", "value": "PC-3"}]
    assert page["assets"][0]["assettype_id"] == 2  # from its type's name
    typed = http.get("/api/Asset", params={"assettype_id": "7", "client_id": "1"}).json()
    assert [a["id"] for a in typed["assets"]] == [1]


def test_an_array_post_creates_and_updates_and_leaves_the_rest_alone(api):
    sandbox, http = api
    answer = http.post(
        "/api/Asset",
        json=[
            {"assettype_id": 7, "site_id": 20, "fields": [{"id": 101, "value": "NEW"},
             {"id": 150, "value": "42"}, {"id": 9999, "value": "ignored"}], "users": [{"id": 5}]},
            {"id": 1, "fields": [{"id": 150, "value": "7"}]},
        ],
    )  # fmt: skip
    assert answer.status_code == 200
    created, _ = answer.json()
    assert (created["id"], created["client_id"], created["site_name"]) == (4, 2, "Main")
    assert created["key_field"] == "NEW" and created["users"] == [{"id": 5, "name": "Ann"}]
    assert {f["id"] for f in created["fields"]} == {101, 150}
    stored = {a["id"]: a for a in sandbox.assets.records()}
    assert stored[1]["notes"] == "kept" and stored[1]["key_field"] == "PC-1"
    assert {f["id"]: f["value"] for f in stored[1]["fields"]} == {101: "PC-1", 117: "S1", 150: "7"}
    assert sandbox.stats()["requests"]["Asset"] == 1


def test_bad_bodies_are_refused_before_anything_is_written(api):
    sandbox, http = api
    before = sandbox.assets.records()
    for body in ({"id": 1}, [{"id": 999}], [{"site_id": 10}], [{"assettype_id": 7}], "x"):
        assert http.post("/api/Asset", json=body).status_code == 400
    assert http.put("/api/Asset", json=[]).status_code == 405
    assert sandbox.assets.records() == before


def test_a_fault_mid_write_keeps_what_the_request_saved_before_it(api):
    sandbox, http = api
    sandbox.assets.fail_writes_after(1, status=503)
    body = [{"assettype_id": 7, "site_id": 10}, {"assettype_id": 7, "site_id": 10}]
    assert http.post("/api/Asset", json=body).status_code == 503
    assert [a["id"] for a in sandbox.assets.records()] == [1, 2, 3, 4]
    assert http.post("/api/Asset", json=body).status_code == 200  # the fault fired once
    assert len(sandbox.assets.records()) == 6


def test_replacing_the_data_set_resets_the_assets(api):
    sandbox, http = api
    http.post("/api/Asset", json=[{"assettype_id": 7, "site_id": 10}])
    sandbox.set_data(data())
    assert [a["id"] for a in sandbox.assets.records()] == [1, 2, 3]
