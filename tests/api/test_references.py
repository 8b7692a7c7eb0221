"""Mappings and rules naming HaloPSA clients, sites or ImmyBot tenants the data does not hold.

Both sandboxes' demo synced into Azurite (sandbox/halo_data.py: HaloPSA clients 1-8 and sites
1-10 and 12, site 11 deleted; sandbox/immybot_data.py: ImmyBot tenants 1-9, 11 and 12, tenant 10
deleted). An id at or below the newest of its kind that the snapshot lacks is refused (409
`unknown-ids`) and nothing is stored; one above it is stored with a warning.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import azure.functions as func
import pytest

from sandbox.halo_data import HaloDataSet, demo_data
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.problems import PROBLEM_JSON
from shared.api.rules import import_rules
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.conftest import immy_settings
from tests.registry import handler

pytestmark = pytest.mark.integration
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
UNKNOWN_IDS = "https://halo-immy.invalid/problems/unknown-ids"


def sync() -> None:
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error


@pytest.fixture
def world(configure, halo_sandbox):
    """Both demo sandboxes, the demo rules, one sync; yields the HaloPSA sandbox."""
    forget_applications()
    halo_data = demo_data(datetime.now(UTC).date())
    halo = halo_sandbox(halo_data)
    immy = ImmyBotSandbox(immy_data_for(halo_data)).start()
    configure(halo.url, **immy_settings(immy))
    import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
    sync()
    yield halo
    immy.stop()
    forget_applications()


def call(name: str, url: str, method: str = "GET", body: bytes = b"", route=None, **params):
    request = func.HttpRequest(method, url, body=body, params=params, route_params=route or {})
    return handler(name)(request)


def put_mapping(client_id: int, tenant_id: int) -> func.HttpResponse:
    body = json.dumps({"immy_tenant_id": tenant_id}).encode()
    key = str(client_id)
    return call("rules", f"/api/mappings/{key}", "PUT", body, {"area": "mappings", "key": key})


def put_rule(software: str, **fields) -> func.HttpResponse:
    body = json.dumps({"contract_types": ["Managed Security"], **fields}).encode()
    return call("rules", f"/api/rules/{software}", "PUT", body, {"area": "rules", "key": software})


def refused(response: func.HttpResponse) -> dict:
    assert response.status_code == 409, response.get_body()
    assert response.mimetype == PROBLEM_JSON
    problem = json.loads(response.get_body())
    assert problem["type"] == UNKNOWN_IDS
    return problem


def answer(response: func.HttpResponse, status: int) -> dict:
    assert response.status_code == status, response.get_body()
    return json.loads(response.get_body())


def explicit() -> list[dict]:
    return answer(call("rules", "/api/mappings", route={"area": "mappings"}), 200)["explicit"]


def stored_rules() -> list[str]:
    return [r["software"] for r in answer(call("rules", "/api/rules"), 200)["rules"]]


def target(software: str, client_id: int) -> dict:
    body = answer(call("targets", "/api/targets", software=software), 200)
    return next(t for t in body["targets"] if t["client_id"] == client_id)


# -- mappings ----------------------------------------------------------------------------------


def test_a_mapping_to_a_deleted_immybot_tenant_is_refused_and_nothing_stored(world):
    problem = refused(put_mapping(7, 10))
    assert problem["unknown"] == {"immy_tenant_id": [10]}
    assert "ImmyBot tenant 10 is not in the snapshot synced " in problem["detail"]
    assert "holds ImmyBot tenants up to id 12" in problem["detail"]
    assert explicit() == []


def test_an_explicit_mapping_settles_a_client_its_entra_tenant_left_ambiguous(world):
    assert target("SentinelOne", 7)["mapping"] == "ambiguous"
    saved = answer(put_mapping(7, 11), 201)
    assert (saved["halo_client_id"], saved["immy_tenant_id"], saved["warnings"]) == (7, 11, [])
    woodgrove = target("SentinelOne", 7)
    assert (woodgrove["mapping"], woodgrove["immy_tenant_id"]) == ("explicit", 11)
    # Re-mapped from what the generation stored: Northwind's Entra tenant was kept with it.
    northwind = target("SentinelOne", 3)
    assert (northwind["mapping"], northwind["immy_tenant_id"]) == ("entra_tenant", 4)


def test_ids_above_the_newest_known_are_stored_with_a_warning(world):
    saved = answer(put_mapping(9, 13), 201)
    first, second = saved["warnings"]
    assert first.startswith("halo_client_id: HaloPSA client 9 is not in the snapshot synced ")
    assert "holds HaloPSA clients up to id 8: perhaps created since" in first
    assert second.startswith("immy_tenant_id: ImmyBot tenant 13 is not in the snapshot")
    assert explicit() == [
        {
            "halo_client_id": 9,
            "halo_client_name": None,
            "immy_tenant_id": 13,
            "immy_tenant_name": None,
            "note": "",
        }
    ]


def without_client(data: HaloDataSet, client_id: int) -> HaloDataSet:
    """`data` as HaloPSA lists it once a client and everything of it is deleted."""
    for kind in ("clients", "sites", "contracts", "invoices", "tickets", "assets", "users"):
        key = "id" if kind == "clients" else "client_id"
        records = getattr(data, kind)
        setattr(data, kind, [r for r in records if int(float(r.get(key, 0))) != client_id])
    return data


def test_a_deleted_halopsa_client_is_refused_in_a_mapping_and_a_rule(world):
    world.set_data(without_client(world.data, 4))  # Tailspin Toys LLC
    sync()
    assert refused(put_mapping(4, 6))["unknown"] == {"halo_client_id": [4]}
    problem = refused(put_rule("EDR", exclude_clients=[1, 4, 42]))
    assert problem["unknown"] == {"exclude_clients": [4]}  # 42 may be newer: not refused
    assert problem["detail"].startswith("rule 'EDR': exclude_clients: HaloPSA client 4 is not")
    assert "EDR" not in stored_rules() and explicit() == []


# -- rules -------------------------------------------------------------------------------------


def test_a_rule_scoped_to_a_deleted_site_is_refused_and_one_perhaps_newer_is_warned(world):
    problem = refused(put_rule("EDR", site_ids=[1, 11]))
    assert problem["unknown"] == {"site_ids": [11]}
    assert "HaloPSA site 11 is not in the snapshot synced " in problem["detail"]
    assert "EDR" not in stored_rules()
    view = answer(put_rule("EDR", site_ids=[1, 9999]), 201)
    (warning,) = [w for w in view["warnings"] if w.startswith("site_ids:")]
    assert "HaloPSA site 9999 is not in the snapshot" in warning
    assert "holds HaloPSA sites up to id 12: perhaps created since" in warning
    assert "EDR" in stored_rules()
    # A GET does not read the snapshots: it repeats the billing names' warnings only.
    got = answer(call("rules", "/api/rules/EDR", route={"area": "rules", "key": "EDR"}), 200)
    assert not any(w.startswith("site_ids:") for w in got["warnings"])


def test_an_import_naming_a_deleted_site_stores_none_of_its_rules(world):
    before = answer(call("rules", "/api/rules"), 200)
    rules = [
        {"software": "Huntress", "contract_types": ["Managed Security"]},
        {"software": "EDR", "contract_types": ["Managed Security"], "site_ids": [11, 12]},
    ]
    body = json.dumps({"rules": rules}).encode()
    problem = refused(call("rules", "/api/rules", "PUT", body))
    assert problem["unknown"] == {"EDR": {"site_ids": [11]}}
    assert answer(call("rules", "/api/rules"), 200) == before


def test_before_the_first_sync_ids_are_stored_unchecked(configure, halo_sandbox):
    halo = halo_sandbox(demo_data(datetime.now(UTC).date()))
    configure(halo.url)
    view = answer(put_rule("EDR", exclude_clients=[11]), 201)
    assert "exclude_clients: not checked, no sync has completed yet" in view["warnings"]
    saved = answer(put_mapping(3, 4), 201)
    assert saved["warnings"] == [
        "halo_client_id: not checked, no sync has completed yet",
        "immy_tenant_id: not checked, no sync has completed yet",
    ]
    sync()  # HaloPSA only: the tenant still cannot be checked, the client can
    (warning,) = answer(put_mapping(3, 4), 200)["warnings"]
    assert warning.startswith("immy_tenant_id: not checked, the snapshot holds no ImmyBot data")
