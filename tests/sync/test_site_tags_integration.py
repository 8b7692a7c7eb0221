"""A site-scoped rule's ImmyBot tag on the computers at its sites, end to end: both sandboxes and
Azurite, asset population in `plan` (it lists HaloPSA's assets and keeps where each computer is),
tags read back from the ImmyBot sandbox's state.

Demo data, no HaloPSA link in ImmyBot (so clients map by name, as asset population needs): Huntress
covers Contoso Ltd (client 1, tenant 2; sites 1 Head Office, 9 Redmond Lab) and Fabrikam (client 2,
tenant 3; site 2 Head Office); Wide World Importers (client 6) matches no tenant by name. Scoped to
sites 9 and 2, by the demo assets (sandbox/halo_data.py `_DEMO_ASSETS`, matched by name):

    computer  tenant  name            asset, site           outcome
    3         2       CONTOSO-LT01    none                  unplaced
    4, 5, 6   2       CONTOSO-*       2, 1, 3 at site 1     out of scope
    7         2       CONTOSO-LAB01   4 at site 9           tagged
    8         3       FABRIKAM-LT01   6 at site 2           tagged
    9         3       FABRIKAM-WS01   5 at site 2           tagged
    10, 11    3       FABRIKAM-LT02, FABRIKAM-SRV01: none   unplaced
"""

from __future__ import annotations

import asyncio
import html
import json
import re
from datetime import UTC, datetime

import azure.functions as func
import pytest
from jsonschema import Draft202012Validator

from sandbox.halo_data import demo_data
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.openapi import openapi_document
from shared.api.rules import import_rules
from shared.core.reach import OTHER_SITE
from shared.core.site_links import NO_LINKS
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings, get_store
from tests.conftest import immy_settings
from tests.registry import handler
from tests.sync.tag_runs import (
    DEMO_RULES,
    approve_tag,
    call,
    put_rule,
    sync,
    tag_view,
    writes,
)

pytestmark = pytest.mark.integration
HUNTRESS = "Halo: Huntress"
AT_SITES, UNPLACED = {7, 8, 9}, [3, 10, 11]
ASSET_SETTINGS = {
    "ASSET_SYNC": "plan",
    "ASSET_TYPE_ID": "1",
    "ASSET_NAME_FIELD": "101",
    "ASSET_ID_FIELD": "150",
    "ASSET_MARKER_FIELD": "151",
}


@pytest.fixture
def start(configure, halo_sandbox):
    """Both sandboxes on the demo data, asset population planning, IMMY_TAGS as given, the demo
    rules with Huntress scoped to `site_ids` (None: not scoped)."""
    started: list[ImmyBotSandbox] = []

    def begin(mode: str, site_ids: list[int] | None = None) -> ImmyBotSandbox:
        forget_applications()
        halo_data = demo_data(datetime.now(UTC).date())
        immy = ImmyBotSandbox(immy_data_for(halo_data)).start()
        started.append(immy)
        halo = halo_sandbox(halo_data)
        configure(halo.url, **immy_settings(immy), IMMY_TAGS=mode, **ASSET_SETTINGS)
        import_rules(get_store(), DEMO_RULES.read_bytes(), datetime.now(UTC).date())
        if site_ids is not None:
            put_rule("Huntress", site_ids=site_ids)
        return immy

    yield begin
    for immy in started:
        immy.stop()
    forget_applications()


def set_mode(monkeypatch, mode: str) -> None:
    monkeypatch.setenv("IMMY_TAGS", mode)
    get_settings.cache_clear()


def test_a_site_scoped_rule_tags_exactly_the_computers_of_its_sites(start, monkeypatch):
    immy = start("plan", site_ids=[9, 2])
    sync()
    planned = tag_view()["Huntress"]
    assert writes(immy) == 0 and [t["name"] for t in immy.data.tags] == []  # plan writes nothing
    assert (planned["level"], planned["should"], planned["carrying"]) == ("computer", [7, 8, 9], [])
    assert [(c["level"], c["create"], c["add"]) for c in planned["changes"]] == [
        ("computer", True, [7, 8, 9])
    ]
    assert [u["computer_id"] for u in planned["unplaced"]] == UNPLACED
    scope = {s["client_id"]: (s["computers"], s["note"]) for s in planned["site_scope"]}
    assert scope == {
        1: ([7], None),
        2: ([8, 9], None),
        6: ([], "no ImmyBot tenant: map the client"),
    }

    set_mode(monkeypatch, "apply")
    report = sync()
    assert immy.computer_tags()[HUNTRESS] == AT_SITES
    assert immy.tenant_tags()[HUNTRESS] == set()  # never on a tenant: that would reach them all
    assert report.immy_tags["rules"]["Huntress"] == {
        "add": 3, "remove": 0, "level": "computer", "unplaced": 3,
    }  # fmt: skip
    before = writes(immy)
    again = sync()
    assert writes(immy) == before  # converged: a second run writes nothing
    assert again.immy_tags["added"] == again.immy_tags["removed"] == 0


def targets_with_computers(if_none_match: str | None = None) -> func.HttpResponse:
    headers = {"If-None-Match": if_none_match} if if_none_match else {}
    params = {"software": "Huntress", "expand": "computers"}
    request = func.HttpRequest("GET", "/api/targets", body=b"", params=params, headers=headers)
    return handler("targets")(request)


def test_the_targets_answer_shows_the_computers_at_the_sites_and_the_unplaced(start):
    start("plan", site_ids=[9, 2])
    sync()
    response = targets_with_computers()
    assert response.status_code == 200, response.get_body()
    body = json.loads(response.get_body())
    document = openapi_document()
    schema = {"$ref": "#/components/schemas/TargetsResponse", "components": document["components"]}
    assert not list(Draft202012Validator(schema).iter_errors(body))
    assert {t: [c["id"] for c in found] for t, found in body["computers"].items()} == {
        "2": [7],
        "3": [8, 9],
    }
    assert body["computer_sites"] == {"7": 9, "8": 2, "9": 2}
    assert [u["computer_id"] for u in body["unplaced"]] == UNPLACED
    assert targets_with_computers(response.headers["ETag"]).status_code == 304


def test_a_rule_becoming_site_scoped_leaves_its_tenants_only_once_approved(start):
    immy = start("apply")
    sync()
    assert immy.tenant_tags()[HUNTRESS] == {2, 3}
    put_rule("Huntress", site_ids=[9, 2])
    report = sync()
    # The computers are tagged at once; taking the tag off every tenant narrows the rule: held.
    assert immy.computer_tags()[HUNTRESS] == AT_SITES
    assert immy.tenant_tags()[HUNTRESS] == {2, 3}
    assert report.immy_tags["held"] == [HUNTRESS]
    held = tag_view()["Huntress"]["held_cleanup"]
    assert (held["level"], held["tenants"], held["removing"]) == ("tenant", [2, 3], 2)
    assert approve_tag("Huntress")["approved"] == [held]
    sync()
    assert immy.tenant_tags()[HUNTRESS] == set()
    assert immy.computer_tags()[HUNTRESS] == AT_SITES
    assert tag_view()["Huntress"]["held_cleanup"] is None
    before = writes(immy)
    sync()
    assert writes(immy) == before


def test_computers_leaving_the_scope_beyond_the_guard_are_held_until_approved(start):
    immy = start("apply", site_ids=[9, 2])
    sync()
    put_rule("Huntress", site_ids=[9])  # computers 8 and 9 leave: 2 of 3, over SYNC_MAX_DROP
    report = sync()
    assert report.immy_tags["held"] == [HUNTRESS]
    assert immy.computer_tags()[HUNTRESS] == AT_SITES
    held = tag_view()["Huntress"]["held"]
    assert (held["level"], held["computers"], held["carrying"]) == ("computer", [8, 9], 3)
    approve_tag("Huntress")
    sync()
    assert immy.computer_tags()[HUNTRESS] == {7}
    assert tag_view()["Huntress"]["held"] is None


def reconciliation(software: str) -> dict:
    response = call("reconciliation", "/api/reconciliation", software=software)
    assert response.status_code == 200, response.get_body()
    return json.loads(response.get_body())


def tab_html(ticket_id: str) -> str:
    request = func.HttpRequest(
        "GET",
        f"/api/technician-tab/ticket/{ticket_id}",
        body=b"",
        route_params={"ticket_id": ticket_id},
    )
    response = asyncio.run(handler("technician_tab")(request))
    assert response.status_code == 200, response.get_body()[:300]
    return response.get_body().decode()


def huntress_cells(page: str) -> dict[str, tuple[str, str]]:
    """Computer name -> (status, text) of its Huntress cell."""
    found = re.findall(
        r'<bdi>([A-Z0-9-]+)</bdi></a></td>\s*<td class="sw (\w+)" data-software="Huntress">(.*?)'
        r"</td>",
        page,
        re.S,
    )
    return {
        name: (status, html.unescape(re.sub(r"<[^>]+>", "", text)).strip())
        for name, status, text in found
    }


def test_a_site_scoped_rule_counts_and_marks_only_the_computers_at_its_sites(start):
    start("plan", site_ids=[9, 2])
    sync()
    # Contoso: only computer 7 is at site 9 (never inventoried: no Huntress), 3 is unplaced.
    # Fabrikam: 8 (no Huntress: id divisible by 4) and 9 (Huntress) at site 2; 10, 11 unplaced.
    report = reconciliation("Huntress")
    assert report["site_ids"] == [9, 2] and report["site_links_run"] is not None
    numbers = {
        r["client_name"]: (r["targeted"], r["installed"], r["unplaced"], r["targeted_unknown"])
        for r in report["rows"]
    }
    assert numbers == {
        "Contoso Ltd": (1, 0, 1, None),
        "Fabrikam, Inc.": (2, 1, 2, None),
        "Wide World Importers": (None, None, None, "the client has no ImmyBot tenant"),
    }
    assert report["totals"]["unplaced"] == 3
    # The tags answer has the very same numbers.
    clients = {c["client_name"]: c for c in tag_view()["Huntress"]["clients"]}
    assert {n: (c["targeted"], c["installed"], c["unplaced"]) for n, c in clients.items()} == {
        n: (t, i, u) for n, (t, i, u, _) in numbers.items()
    }
    # The tab: the heading's numbers, and "missing" only at the rule's sites.
    page = tab_html("1")
    assert "billed by contract (no quantity) · targeted 1 · installed 0 · 1 computer at no" in page
    cells = huntress_cells(page)
    assert cells["CONTOSO-LAB01"] == ("missing", "missing install it from ImmyBot")  # site 9
    assert cells["CONTOSO-LT02"] == ("not_targeted", f"not targeted {OTHER_SITE}")  # site 1
    assert cells["CONTOSO-LT01"][0] == "installed"  # installed is said wherever it is


def test_without_computer_to_site_links_a_site_scoped_rule_says_targeted_is_unknown(
    start, monkeypatch
):
    start("plan", site_ids=[9, 2])
    monkeypatch.setenv("ASSET_SYNC", "off")  # asset population stores no links
    get_settings.cache_clear()
    sync()
    rows = {r["client_name"]: r for r in reconciliation("Huntress")["rows"]}
    contoso = rows["Contoso Ltd"]
    assert (contoso["targeted"], contoso["installed"], contoso["unplaced"]) == (None, None, 5)
    assert contoso["targeted_unknown"] == contoso["installed_unknown"] == NO_LINKS
    cells = huntress_cells(tab_html("1"))
    assert cells["CONTOSO-LAB01"] == ("not_targeted", f"not targeted {NO_LINKS}")
