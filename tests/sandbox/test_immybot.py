"""The ImmyBot sandbox: its data sets, its Entra ID endpoints and its API over real HTTP."""

from __future__ import annotations

import base64
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msal
import pytest

from sandbox.halo_data import (
    ENTRA_NORTHWIND,
    ENTRA_NORTHWIND_LTD,
    ENTRA_WOODGROVE,
    ZERO_GUID,
    HaloDataSet,
    demo_data,
    generate,
)
from sandbox.immybot import ImmyBotSandbox, ImmyFaults
from sandbox.immybot_data import ImmyDataSet, add_halo_link, immy_data_for
from sandbox.processes import stop_process, wait_for_line
from shared.core.mapping import normalise_name

ROOT = Path(__file__).resolve().parents[2]
TODAY = date(2025, 6, 15)
TENANT = "11111111-2222-3333-4444-555555555555"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"
OPENID_PATH = f"/{TENANT}/v2.0/.well-known/openid-configuration"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

# Hand-copied from sandbox/immybot_data.py's docstring: tenant id -> (name, online, all).
DEMO_TENANTS = {
    1: ("Demo MSP (internal)", 1, 2),
    2: ("Contoso Limited", 4, 5),
    3: ("Fabrikam Inc", 2, 4),
    4: ("Northwind Traders", 3, 3),
    5: ("Northwind Traders Ltd", 1, 2),
    6: ("Tailspin Toys LLC", 2, 2),
    7: ("Adventure Works", 3, 4),
    8: ("World Wide Importers", 4, 6),
    9: ("Litware Inc", 1, 2),
    11: ("Woodgrove Bank", 2, 2),
    12: ("Woodgrove Bank Harbor Street", 1, 1),
}


NO_TAG_REQUESTS = {
    "tags": 0,
    "add_tags": 0,
    "remove_tags": 0,
    "computer_add_tags": 0,
    "computer_remove_tags": 0,
    "provider_links": 0,
    "provider_clients": 0,
    "detected_software": 0,
    "inventory_search": 0,
}


@pytest.fixture
def halo() -> HaloDataSet:
    return demo_data(TODAY)


@pytest.fixture
def demo(halo: HaloDataSet) -> ImmyDataSet:
    return immy_data_for(halo, today=TODAY)


@pytest.fixture
def sandbox(demo: ImmyDataSet) -> Iterator[ImmyBotSandbox]:
    with ImmyBotSandbox(demo) as immy:
        yield immy


@pytest.fixture
def http(sandbox: ImmyBotSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        yield client


def token_form(sandbox: ImmyBotSandbox, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": "immy-client",
        "client_secret": "immy-secret",
        "scope": sandbox.scope,
    }
    form.update(changes)
    return form


def bearer(http: httpx.Client, sandbox: ImmyBotSandbox) -> dict[str, str]:
    answer = http.post(TOKEN_PATH, data=token_form(sandbox))
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def paged(http: httpx.Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    answer = http.get("/api/v1/computers/paged", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


# -- data sets -------------------------------------------------------------------------------


def test_demo_tenants_carry_the_documented_mismatches(halo: HaloDataSet, demo: ImmyDataSet):
    assert {t["id"]: t["name"] for t in demo.tenants} == {
        tid: name for tid, (name, _, _) in DEMO_TENANTS.items()
    }
    msp = demo.tenants[0]
    assert (msp["isMsp"], msp["ownerTenantId"]) == (True, None)
    assert all(t["ownerTenantId"] == 1 and not t["isMsp"] for t in demo.tenants[1:])
    assert all(t["active"] for t in demo.tenants)

    by_normal: dict[str, list[str]] = {}
    for tenant in demo.tenants[1:]:
        by_normal.setdefault(normalise_name(tenant["name"]), []).append(tenant["name"])
    matches = {c["name"]: by_normal.get(normalise_name(c["name"]), []) for c in halo.clients}
    assert matches == {
        "Contoso Ltd": ["Contoso Limited"],  # legal suffix differs
        "Fabrikam, Inc.": ["Fabrikam Inc"],  # punctuation differs
        "Northwind Traders": ["Northwind Traders", "Northwind Traders Ltd"],  # ambiguous
        "Tailspin Toys LLC": ["Tailspin Toys LLC"],
        "Adventure Works": ["Adventure Works"],
        "Wide World Importers": [],  # only an explicit mapping finds "World Wide Importers"
        "Woodgrove Bank": ["Woodgrove Bank"],  # but see its Entra tenant below
        "Litware Inc": ["Litware Inc"],  # the HaloPSA client is inactive, the tenant is not
    }
    names = [t["name"] for t in demo.tenants]
    assert "World Wide Importers" in names
    linked = {t["id"] for t in demo.tenants if t["azureTenantLink"]}
    assert linked == set(DEMO_TENANTS) - {9}
    assert all(GUID.fullmatch(t["azureTenantLink"]["azTenantId"]) for t in demo.tenants[:3])
    assert all(t["azureTenantLink"]["immyTenantId"] == t["id"] for t in demo.tenants[:3])

    # The Entra tenants (sandbox/halo_data.py's table): HaloPSA's in any case, ImmyBot's lower.
    entra = {
        c["name"]: [a["azure_tenant_id"].lower() for a in c["azure_tenants"]] for c in halo.clients
    }
    assert {name: ids for name, ids in entra.items() if ids} == {
        "Fabrikam, Inc.": [ZERO_GUID],
        "Northwind Traders": [ENTRA_NORTHWIND],
        "Woodgrove Bank": [ENTRA_WOODGROVE],
    }
    assert halo.clients[2]["azure_tenants"][0]["azure_tenant_id"] == ENTRA_NORTHWIND.upper()
    by_entra: dict[str, list[int]] = {}
    for tenant in demo.tenants:
        if tenant["azureTenantLink"]:
            by_entra.setdefault(tenant["azureTenantLink"]["azTenantId"], []).append(tenant["id"])
    assert by_entra[ENTRA_NORTHWIND] == [4]  # one of the two Northwind Traders tenants
    assert by_entra[ENTRA_NORTHWIND_LTD] == [5]
    assert by_entra[ENTRA_WOODGROVE] == [11, 12]  # one Entra tenant, two ImmyBot tenants
    assert 10 not in {t["id"] for t in demo.tenants}  # deleted from ImmyBot, never reused
    assert ZERO_GUID not in by_entra
    domains = [t["azureTenantLink"]["limitToDomains"] for t in demo.tenants[9:]]
    assert [[d["domainName"] for d in limits] for limits in domains] == [
        ["woodgrove.example.com"],
        ["harbor.woodgrove.example.com"],
    ]
    assert len({t["slug"] for t in demo.tenants}) == len(demo.tenants)


def test_demo_computers_match_the_documented_counts(halo: HaloDataSet, demo: ImmyDataSet):
    online = Counter(c["tenantId"] for c in demo.computers if c["isOnline"])
    every = Counter(c["tenantId"] for c in demo.computers)
    assert {tid: (online[tid], every[tid]) for tid in every} == {
        tid: (up, total) for tid, (_, up, total) in DEMO_TENANTS.items()
    }
    assert [c["id"] for c in demo.computers] == list(range(1, 34))
    names = {t["id"]: t["name"] for t in demo.tenants}
    assert all(c["tenantName"] == names[c["tenantId"]] for c in demo.computers)
    assert {"CONTOSO-LT01", "CONTOSO-SRV01"} <= {c["computerName"] for c in demo.computers}

    def of(email: str) -> list[dict[str, Any]]:
        return [c for c in demo.computers if c["primaryUserEmail"] == email]

    dana = of("dana.whitfield@contoso.example.com")
    assert [(c["computerName"], c["isOnline"]) for c in dana] == [("CONTOSO-LT01", True)]
    assert (dana[0]["primaryUserFirstName"], dana[0]["primaryUserLastName"]) == (
        "Dana",
        "Whitfield",
    )
    tom = of("tom.okafor@fabrikam.example.com")
    assert [(c["computerName"], c["isOnline"]) for c in tom] == [
        ("FABRIKAM-LT01", True),
        ("FABRIKAM-WS01", False),
    ]
    assert halo.tickets[0]["user_email"] == "dana.whitfield@contoso.example.com"

    # Primary users are the tenant's own HaloPSA client's users.
    client_of_tenant = {2: 1, 3: 2, 4: 3, 5: 3, 6: 4, 7: 5, 8: 6, 9: 8, 11: 7, 12: 7}
    emails = {(u["client_id"], u["emailaddress"]) for u in halo.users}
    with_user = [c for c in demo.computers if c["primaryUserEmail"]]
    assert len(with_user) == 19
    for computer in with_user:
        assert (client_of_tenant[computer["tenantId"]], computer["primaryUserEmail"]) in emails
    for computer in demo.computers:
        seen = datetime.strptime(computer["lastProviderAgentEventDateUtc"], "%Y-%m-%dT%H:%M:%SZ")
        assert TODAY - timedelta(days=14) <= seen.date() < TODAY
        assert computer["lastBootTimeUtc"] < computer["lastProviderAgentEventDateUtc"]
        assert computer["onboardingStatus"] == "Onboarded"
        assert GUID.fullmatch(computer["deviceId"])


def test_data_sets_are_deterministic(halo: HaloDataSet, demo: ImmyDataSet, tmp_path: Path):
    assert immy_data_for(demo_data(TODAY), today=TODAY) == demo
    other = immy_data_for(halo, seed=2, today=TODAY)
    assert other != demo  # GUIDs and serials follow the seed ...
    strip = ("id", "tenantId", "computerName", "isOnline", "primaryUserEmail")
    assert [{k: c[k] for k in strip} for c in other.computers] == [
        {k: c[k] for k in strip} for c in demo.computers
    ]  # ... the documented table does not
    assert [t["name"] for t in other.tenants] == [t["name"] for t in demo.tenants]

    big = generate(300, seed=4, today=TODAY)
    assert immy_data_for(big, seed=4, today=TODAY) == immy_data_for(big, seed=4, today=TODAY)
    assert immy_data_for(big, seed=4, today=TODAY) != immy_data_for(big, seed=5, today=TODAY)

    path = tmp_path / "immy.json"
    demo.dump(path)
    assert ImmyDataSet.load(path) == demo
    with pytest.raises(ValueError, match="unknown record types: devices"):
        ImmyDataSet.from_json({"devices": []})


def test_generated_sets_hold_mismatches_at_small_rates():
    halo = generate(3000, seed=7, today=TODAY)
    immy = immy_data_for(halo, seed=7, today=TODAY)
    active = [c for c in halo.clients if not c["inactive"]]
    tenant_names = Counter(t["name"] for t in immy.tenants[1:])
    client_names = {c["name"] for c in halo.clients}
    client_normals = {normalise_name(c["name"]) for c in halo.clients}

    exact = sum(1 for c in active if c["name"] in tenant_names) / len(active)
    assert 0.90 < exact < 0.96  # ~93%: 3% suffix change, 2% none, 1% different, 1% dup kept
    renamed = [name for name in tenant_names if name not in client_names]
    assert 0.03 < len(renamed) / len(tenant_names) < 0.08  # suffix changes, dups, different
    different = [name for name in renamed if normalise_name(name) not in client_normals]
    assert 0.004 < len(different) / len(tenant_names) < 0.02
    assert len(immy.tenants) < len(halo.clients) + 1

    per_tenant = Counter(c["tenantId"] for c in immy.computers)
    assert set(per_tenant) == {t["id"] for t in immy.tenants}  # at least one computer each
    users = sum(1 for _ in halo.users)
    assert 0.15 < len(immy.computers) / users < 0.4  # about one per five users
    online = sum(c["isOnline"] for c in immy.computers) / len(immy.computers)
    assert 0.65 < online < 0.75
    assert sum(c["primaryUserEmail"] is not None for c in immy.computers) > len(immy.computers) / 2
    assert len({c["deviceId"] for c in immy.computers}) == len(immy.computers)


# -- Entra ID --------------------------------------------------------------------------------


def test_openid_configuration_uses_https_and_the_host_header(
    sandbox: ImmyBotSandbox, http: httpx.Client
):
    config = http.get(OPENID_PATH).json()
    base = f"https://127.0.0.1:{sandbox.port}/{TENANT}"
    assert config["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert config["device_authorization_endpoint"] == f"{base}/oauth2/v2.0/devicecode"
    assert config["issuer"] == f"{base}/v2.0"
    assert "client_secret_post" in config["token_endpoint_auth_methods_supported"]
    assert sandbox.authority == base

    renamed = http.get(OPENID_PATH, headers={"Host": "immy.example.test:8443"}).json()
    assert renamed["token_endpoint"] == f"https://immy.example.test:8443/{TENANT}/oauth2/v2.0/token"
    odd = http.get(OPENID_PATH, headers={"Host": "evil/path?x"}).json()
    assert odd["issuer"] == f"{base}/v2.0"  # an unusable Host is not echoed

    unknown = http.get("/not-a-tenant/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_tenant"
    assert unknown.json()["error_description"].startswith(
        "AADSTS90002: Tenant 'not-a-tenant' not found."
    )


def test_token_flow(sandbox: ImmyBotSandbox, http: httpx.Client):
    good = http.post(TOKEN_PATH, data=token_form(sandbox))
    assert good.status_code == 200
    body = good.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == body["ext_expires_in"] == 3599
    assert len(body["access_token"]) > 30
    assert good.headers["Cache-Control"].startswith("no-store")

    bad = http.post(
        TOKEN_PATH,
        data=token_form(sandbox, client_secret="wrong"),
        headers={"client-request-id": "0f0e0d0c-0b0a-0908-0706-050403020100"},
    )
    assert bad.status_code == 401
    error = bad.json()
    assert error["error"] == "invalid_client"
    assert error["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert error["error_codes"] == [7000215]
    assert GUID.fullmatch(error["trace_id"])
    assert error["correlation_id"] == "0f0e0d0c-0b0a-0908-0706-050403020100"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", error["timestamp"])

    def failure(**changes: str) -> tuple[int, str, list[int]]:
        answer = http.post(TOKEN_PATH, data=token_form(sandbox, **changes))
        return answer.status_code, answer.json()["error"], answer.json()["error_codes"]

    assert failure(client_id="someone-else") == (400, "unauthorized_client", [700016])
    assert failure(scope="https://graph.microsoft.com/User.Read") == (
        400,
        "invalid_scope",
        [1002012],
    )
    assert failure(scope=f"{sandbox.scope} openid") == (400, "invalid_scope", [1002012])
    assert failure(grant_type="password") == (400, "unsupported_grant_type", [70003])
    assert failure(client_secret="") == (401, "invalid_client", [7000218])
    assert failure(scope="") == (400, "invalid_request", [900144])
    # No expected scope configured: any resource's "/.default" is accepted.
    assert http.post(TOKEN_PATH, data=token_form(sandbox, scope="api://x/.default")).is_success

    other_tenant = http.post("/contoso.example/oauth2/v2.0/token", data=token_form(sandbox))
    assert (other_tenant.status_code, other_tenant.json()["error_codes"]) == (400, [90002])
    assert http.get(TOKEN_PATH).json()["error_codes"] == [900561]

    # client_secret_basic: the credentials in an Authorization header instead of the form.
    form = token_form(sandbox)
    del form["client_id"], form["client_secret"]
    basic = base64.b64encode(b"immy-client:immy-secret").decode()
    answer = http.post(TOKEN_PATH, data=form, headers={"Authorization": f"Basic {basic}"})
    assert answer.status_code == 200


def test_expected_scope_narrows_what_is_accepted(demo: ImmyDataSet):
    instance = "https://immy.example.test"
    with (
        ImmyBotSandbox(demo, expected_scope=f"{instance}/.default") as immy,
        httpx.Client(base_url=immy.url) as http,
    ):
        assert immy.scope == f"{instance}/.default"

        def status(scope: str) -> int:
            return http.post(TOKEN_PATH, data=token_form(immy, scope=scope)).status_code

        assert status(f"{instance}/.default") == 200
        assert status(f"{immy.https_url}/.default") == 200  # the sandbox itself, as https
        assert status("api://something-else/.default") == 400


def test_msal_acquires_a_token_through_an_https_rewriting_client(sandbox: ImmyBotSandbox):
    class Rewriting:
        """What the app's client does: msal insists on https, the sandbox speaks http."""

        def __init__(self) -> None:
            self.client = httpx.Client(timeout=10)

        def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> Any:
            return self.client.get(
                url.replace("https://", "http://", 1), params=params, headers=headers
            )

        def post(
            self, url: str, params: Any = None, data: Any = None, headers: Any = None, **_: Any
        ) -> Any:
            url = url.replace("https://", "http://", 1)
            return self.client.post(url, params=params, data=data, headers=headers)

        def close(self) -> None:
            self.client.close()

    transport = Rewriting()
    try:
        app = msal.ConfidentialClientApplication(
            "immy-client",
            client_credential="immy-secret",
            authority=sandbox.authority,
            http_client=transport,
            instance_discovery=False,
        )
        first = app.acquire_token_for_client([sandbox.scope])
        assert first["token_source"] == "identity_provider", first
        assert app.acquire_token_for_client([sandbox.scope])["token_source"] == "cache"
        headers = {"Authorization": f"Bearer {first['access_token']}"}
        answer = httpx.get(f"{sandbox.url}/api/v1/tenants", headers=headers)
        assert answer.status_code == 200
        assert sandbox.stats()["tokens_issued"] == 1
    finally:
        transport.close()


# -- the ImmyBot API -------------------------------------------------------------------------


def test_api_needs_a_valid_token(sandbox: ImmyBotSandbox, http: httpx.Client, demo: ImmyDataSet):
    for headers in ({}, {"Authorization": "Bearer made-up"}, {"Authorization": "Basic eDp5"}):
        answer = http.get("/api/v1/tenants", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert http.get("/api/v1/computers/paged").status_code == 401

    answer = http.get("/api/v1/tenants", headers=bearer(http, sandbox))
    assert answer.status_code == 200
    assert answer.json() == demo.tenants

    sandbox.set_faults(ImmyFaults(token_ttl_seconds=0))  # issued already expired
    assert http.get("/api/v1/tenants", headers=bearer(http, sandbox)).status_code == 401


def test_paging_counts_and_offline_computers(
    sandbox: ImmyBotSandbox, http: httpx.Client, demo: ImmyDataSet
):
    headers = bearer(http, sandbox)
    online = paged(http, headers)
    assert online["count"] == 24  # offline computers are left out by default, as in ImmyBot
    assert [c["id"] for c in online["results"]] == [
        c["id"] for c in demo.computers if c["isOnline"]
    ]
    everything = paged(http, headers, includeOffline="true")
    assert everything["count"] == 33
    assert everything["results"] == demo.computers
    assert paged(http, headers, includeoffline="True")["count"] == 33  # case-insensitive

    pages = [paged(http, headers, includeOffline="true", skip=s, take=7) for s in range(0, 35, 7)]
    assert [len(p["results"]) for p in pages] == [7, 7, 7, 7, 5]
    assert {p["count"] for p in pages} == {33}
    assert [c for p in pages for c in p["results"]] == demo.computers
    assert paged(http, headers, skip=100) == {"count": 24, "results": []}
    assert paged(http, headers, take=0) == {"count": 24, "results": []}

    by_name = paged(http, headers, includeOffline="true", sort="computerName", sortDesc="true")
    names = [c["computerName"] for c in by_name["results"]]
    assert names == sorted(names, key=str.casefold, reverse=True)


def test_default_and_maximum_page_size(demo: ImmyDataSet):
    big = immy_data_for(generate(1500, seed=2, today=TODAY), seed=2, today=TODAY)
    with ImmyBotSandbox(big) as immy, httpx.Client(base_url=immy.url, timeout=10) as http:
        headers = bearer(http, immy)
        first = paged(http, headers, includeOffline="true")
        assert first["count"] == len(big.computers) > 1000
        assert len(first["results"]) == 50
        # The server caps a page at 100 and says so only through `count`.
        capped = paged(http, headers, includeOffline="true", take=1000)
        assert len(capped["results"]) == 100 and capped["count"] == len(big.computers)
        for params in ({"take": -1}, {"skip": "x"}, {"includeOffline": "yes"}):
            answer = http.get("/api/v1/computers/paged", params=params, headers=headers)
            assert answer.status_code == 400, params
            assert answer.json()["errors"]
        assert http.get("/api/v1/computers/paged", params={"sort": "nope"}, headers=headers).json()[
            "errors"
        ] == {"sort": ["'nope' is not a computer field."]}


def test_tenant_filter(sandbox: ImmyBotSandbox, http: httpx.Client):
    headers = bearer(http, sandbox)
    fabrikam = paged(http, headers, tenantId=3)
    assert fabrikam["count"] == 2
    assert {c["tenantName"] for c in fabrikam["results"]} == {"Fabrikam Inc"}
    with_offline = paged(http, headers, tenantId=3, includeOffline="true")
    assert [c["computerName"] for c in with_offline["results"]] == [
        "FABRIKAM-LT01",
        "FABRIKAM-WS01",
        "FABRIKAM-LT02",
        "FABRIKAM-SRV01",
    ]
    for tenant_id, (_, up, total) in DEMO_TENANTS.items():
        assert paged(http, headers, tenantId=tenant_id)["count"] == up
        assert paged(http, headers, tenantId=tenant_id, includeOffline="true")["count"] == total
    assert paged(http, headers, tenantId=99, includeOffline="true") == {"count": 0, "results": []}


def test_detected_software_follows_the_documented_rule(sandbox: ImmyBotSandbox, http: httpx.Client):
    """Contoso's computers 3-7 (sandbox/immybot_data.py): the shape of ImmyBot's
    DetectedComputerSoftwareResponse, an empty list when never inventoried, 404 when unknown."""
    headers = bearer(http, sandbox)

    def names(computer: int) -> set[str]:
        answer = http.get(
            f"/api/v1/computers/{computer}/detected-computer-software", headers=headers
        )
        assert answer.status_code == 200, answer.text
        rows = answer.json()
        assert all(r["computerId"] == computer and r["tenantId"] == 2 for r in rows)
        return {r["softwareName"] for r in rows} - {"Microsoft Edge", "7-Zip 23.01 (x64)"}

    assert names(3) == {"Huntress Agent"}
    assert names(4) == {"Sentinel Agent"}
    assert names(5) == {"Huntress Agent", "Sentinel Agent"}
    assert names(6) == {"Huntress Agent"}
    assert names(7) == set()  # never inventoried
    row = http.get("/api/v1/computers/5/detected-computer-software", headers=headers).json()[0]
    assert {"id", "computerName", "softwareName", "version", "detectedAt", "tenantId"} <= set(row)
    for unknown in ("999", "abc", "-1"):
        answer = http.get(
            f"/api/v1/computers/{unknown}/detected-computer-software", headers=headers
        )
        assert answer.status_code == 404
    assert http.get("/api/v1/computers/5/detected-computer-software").status_code == 401


INVENTORY_ROW = {"computerId", "tenantId", "computer", "tenant", "softwareName", "softwareVersion"}


def test_inventory_search_answers_computer_inventory_all_software(
    sandbox: ImmyBotSandbox, http: httpx.Client
):
    """`all-inventory-software/search-by-name`: one request across every computer, each row a
    `ComputerInventoryAllSoftware` (exactly its six properties), `q` matched case-insensitively
    anywhere in the name, `tenantId` narrowing, the same rows as each computer's own list."""
    headers = bearer(http, sandbox)
    path = "/api/v1/computers/all-inventory-software/search-by-name"

    def rows(**params: Any) -> list[dict[str, Any]]:
        answer = http.get(path, params=params, headers=headers)
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        assert all(set(r) == INVENTORY_ROW for r in found)
        return found

    contoso = rows(q="sentinel AGENT", tenantId=2)
    assert [(r["computerId"], r["computer"], r["tenant"]) for r in contoso] == [
        (4, "CONTOSO-LT02", "Contoso Limited"),
        (5, "CONTOSO-WS01", "Contoso Limited"),
    ]
    assert {(r["softwareName"], r["softwareVersion"]) for r in contoso} == {
        ("Sentinel Agent", "23.4.4.223")
    }
    everywhere = rows(q="Sentinel Agent")
    assert {r["tenantId"] for r in everywhere} > {2, 3}
    for row in everywhere:  # what each computer's own list says, fleet-wide in one answer
        own = http.get(
            f"/api/v1/computers/{row['computerId']}/detected-computer-software", headers=headers
        ).json()
        assert "Sentinel Agent" in {r["softwareName"] for r in own}
        assert {r["tenantId"] for r in own} == {row["tenantId"]}
    assert [r["computerId"] for r in rows(q="^huntress", searchMode=1, tenantId=2)] == [3, 5, 6]
    assert rows(q="no such software") == []
    assert http.get(path, params={"q": "x", "searchMode": 7}, headers=headers).status_code == 400
    assert http.get(path, params={"q": "(", "searchMode": 1}, headers=headers).status_code == 400
    assert http.get(path, params={"q": "x", "tenantId": "two"}, headers=headers).status_code == 400
    assert http.get(path, params={"q": "x"}).status_code == 401
    assert sandbox.stats()["requests"]["inventory_search"] == 8


def test_stats_faults_and_control(sandbox: ImmyBotSandbox, http: httpx.Client):
    assert http.get("/_sandbox/stats").json() == {
        "requests": {"token": 0, "openid": 0, "tenants": 0, "computers": 0, **NO_TAG_REQUESTS},
        "statuses": {},
        "total": 0,
        "tokens_issued": 0,
    }
    http.get(OPENID_PATH)
    headers = bearer(http, sandbox)
    http.post(TOKEN_PATH, data=token_form(sandbox, client_secret="wrong"))
    http.get("/api/v1/tenants", headers=headers)
    http.get("/api/v1/tenants")
    paged(http, headers)
    http.get("/api/v1/nothing-here")  # unrouted: not counted
    assert http.get("/_sandbox/stats").json() == {
        "requests": {"token": 2, "openid": 1, "tenants": 2, "computers": 1, **NO_TAG_REQUESTS},
        "statuses": {"200": 4, "401": 2},
        "total": 6,
        "tokens_issued": 1,
    }
    assert http.post("/_sandbox/reset").json() == {"reset": True}
    assert sandbox.stats()["total"] == 0

    faults = {"error_rate": 1, "error_status": 502, "seed": 3}
    assert http.put("/_sandbox/faults", json=faults).status_code == 200
    assert http.get("/api/v1/tenants", headers=headers).status_code == 502
    assert http.post(TOKEN_PATH, data=token_form(sandbox)).status_code == 200  # Entra unaffected
    assert http.get("/_sandbox/faults").json()["error_status"] == 502
    assert http.put("/_sandbox/faults", json={"bogus": 1}).status_code == 400
    assert http.put("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert http.get("/_sandbox/reset").status_code == 405
    assert ImmyFaults.from_json(ImmyFaults(latency_ms=5).to_json()) == ImmyFaults(latency_ms=5)


def test_denied_endpoints_answer_403(sandbox: ImmyBotSandbox, http: httpx.Client):
    headers = bearer(http, sandbox)
    assert http.put("/_sandbox/faults", json={"deny": ["tags"]}).status_code == 200
    denied = http.get("/api/v1/tags", headers=headers)
    assert denied.status_code == 403
    assert denied.json()["status"] == 403
    assert http.get("/api/v1/tenants", headers=headers).status_code == 200
    assert http.get("/api/v1/tags").status_code == 401  # no token: still 401 first
    for bad in (["token"], ["nothing"], "tags"):
        assert http.put("/_sandbox/faults", json={"deny": bad}).status_code == 400


def test_set_data_and_idempotent_stop(demo: ImmyDataSet):
    immy = ImmyBotSandbox(demo).start()
    try:
        with httpx.Client(base_url=immy.url) as http:
            headers = bearer(http, immy)
            immy.set_data(ImmyDataSet(tenants=demo.tenants[:1], computers=[]))
            assert len(http.get("/api/v1/tenants", headers=headers).json()) == 1
            assert paged(http, headers) == {"count": 0, "results": []}
        with pytest.raises(RuntimeError):
            immy.start()
    finally:
        immy.stop()
    immy.stop()
    assert immy.url == f"http://127.0.0.1:{immy.port}"


# -- command line ----------------------------------------------------------------------------


def test_cli_serves_until_terminated():
    command = [sys.executable, "-m", "sandbox.immybot", "--port", "0", "--clients", "40"]
    proc = subprocess.Popen(
        [*command, "--seed", "3"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        seen = wait_for_line(proc, b"listening on http://127.0.0.1:", 30)
        url = re.search(rb"listening on (http://127\.0\.0\.1:\d+)", seen)
        assert url is not None
        with httpx.Client(base_url=url.group(1).decode(), timeout=10) as http:
            form = {
                "grant_type": "client_credentials",
                "client_id": "immy-client",
                "client_secret": "immy-secret",
                "scope": f"https://{http.base_url.netloc.decode()}/.default",
            }
            token = http.post(TOKEN_PATH, data=form).json()["access_token"]
            tenants = http.get("/api/v1/tenants", headers={"Authorization": f"Bearer {token}"})
        expected = immy_data_for(generate(40, 3), 3)
        assert [t["name"] for t in tenants.json()] == [t["name"] for t in expected.tenants]
    finally:
        stop_process(proc)
        assert proc.stdout is not None
        rest = proc.stdout.read()
        proc.stdout.close()
    assert proc.returncode == 0, rest


def test_tags_are_state_that_tenant_listings_show(sandbox: ImmyBotSandbox, http: httpx.Client):
    headers = bearer(http, sandbox)
    created = http.post(
        "/api/v1/tags", json={"name": "Halo: X", "description": "[halo-immy] x"}, headers=headers
    ).json()
    assert (created["id"], created["name"]) == (1, "Halo: X")
    assert http.post("/api/v1/tags", json={"name": "halo: x"}, headers=headers).status_code == 400
    assert http.get("/api/v1/tags", headers=headers).json()[0]["description"] == "[halo-immy] x"
    body = {"entityIds": [2, 3], "tagIds": [1]}
    assert http.post("/api/v1/tenants/add-tags", json=body, headers=headers).status_code == 200
    remove = {"entityIds": [3], "tagIds": [1]}
    assert http.post("/api/v1/tenants/remove-tags", json=remove, headers=headers).status_code == 200
    tenants = {t["id"]: t for t in http.get("/api/v1/tenants", headers=headers).json()}
    assert (tenants[2]["tenantTagIds"], tenants[2]["tenantTagNames"]) == ([1], ["Halo: X"])
    assert tenants[3]["tenantTagIds"] == []
    assert sandbox.tenant_tags() == {"Halo: X": {2}}
    bad = http.post("/api/v1/tenants/add-tags", json={"entityIds": ["2"]}, headers=headers)
    assert bad.status_code == 400
    unknown = {"entityIds": [99], "tagIds": [1]}
    assert http.post("/api/v1/tenants/add-tags", json=unknown, headers=headers).status_code == 404
    assert http.get("/api/v1/tenants/add-tags", headers=headers).status_code == 405
    assert sandbox.tag_writes == [("add_tags", [2, 3], [1]), ("remove_tags", [3], [1])]
    timed = http.get("/_sandbox/tag-writes", params={"since": 1}).json()
    assert [(w["n"], w["endpoint"], w["entityIds"], w["tagIds"]) for w in timed] == [
        (1, "remove_tags", [3], [1])
    ]
    assert timed[0]["at"] >= http.get("/_sandbox/tag-writes").json()[0]["at"] > 0
    assert http.get("/_sandbox/tag-writes", params={"since": -1}).status_code == 400
    page = http.get("/api/v1/tenants", params={"Page": 2, "PageSize": 4}, headers=headers).json()
    assert [t["id"] for t in page] == [5, 6, 7, 8]


def test_computer_tags_are_state_that_computer_listings_show(
    sandbox: ImmyBotSandbox, http: httpx.Client
):
    headers = bearer(http, sandbox)
    http.post("/api/v1/tags", json={"name": "Halo: X"}, headers=headers)
    http.post("/api/v1/tags", json={"name": "Halo: Y"}, headers=headers)

    def listed() -> dict[int, list[int]]:
        params = {"includeOffline": "true", "take": 100}
        page = http.get("/api/v1/computers/paged", params=params, headers=headers).json()
        return {c["id"]: c["computerTagIds"] for c in page["results"]}

    assert set(map(tuple, listed().values())) == {()}  # every computer lists its (no) tags
    add = {"entityIds": [3, 7], "tagIds": [1, 2]}
    assert http.post("/api/v1/computers/add-tags", json=add, headers=headers).status_code == 200
    remove = {"entityIds": [7], "tagIds": [2]}
    assert (
        http.post("/api/v1/computers/remove-tags", json=remove, headers=headers).status_code == 200
    )
    assert {k: v for k, v in listed().items() if v} == {3: [1, 2], 7: [1]}
    assert sandbox.computer_tags() == {"Halo: X": {3, 7}, "Halo: Y": {3}}
    assert sandbox.tenant_tags() == {"Halo: X": set(), "Halo: Y": set()}  # tenants untouched
    unknown = {"entityIds": [3, 999], "tagIds": [1]}
    answer = http.post("/api/v1/computers/remove-tags", json=unknown, headers=headers)
    assert answer.status_code == 404 and listed()[3] == [1, 2]  # all or nothing
    bad = http.post("/api/v1/computers/add-tags", json={"entityIds": [3]}, headers=headers)
    assert bad.status_code == 400 and "tagIds" in bad.json()["errors"]
    assert http.get("/api/v1/computers/add-tags", headers=headers).status_code == 405
    assert sandbox.tag_writes == [
        ("computer_add_tags", [3, 7], [1, 2]),
        ("computer_remove_tags", [7], [2]),
    ]
    requests = sandbox.stats()["requests"]
    # Counted per endpoint, refused requests included (the 400 and the 405 above).
    assert (requests["computer_add_tags"], requests["computer_remove_tags"]) == (3, 2)


def test_a_fault_after_n_tag_writes_counts_computer_writes_too(
    sandbox: ImmyBotSandbox, http: httpx.Client
):
    headers = bearer(http, sandbox)
    http.post("/api/v1/tags", json={"name": "Halo: X"}, headers=headers)
    sandbox.set_faults(ImmyFaults(tag_writes_before_error=1))
    body = {"entityIds": [3], "tagIds": [1]}
    assert http.post("/api/v1/tenants/add-tags", json=body, headers=headers).status_code == 200
    failed = http.post("/api/v1/computers/add-tags", json=body, headers=headers)
    assert failed.status_code == 503 and sandbox.computer_tags() == {"Halo: X": set()}


def test_provider_links_and_their_clients(demo: ImmyDataSet):
    add_halo_link(demo, {6: 8, 7: None}, {6: "Wide World Importers"})
    with ImmyBotSandbox(demo) as immy, httpx.Client(base_url=immy.url, timeout=10) as http:
        headers = bearer(http, immy)
        (link,) = http.get("/api/v1/provider-links", headers=headers).json()
        assert (link["id"], link["name"]) == (1, "HaloPSA")
        clients = http.get("/api/v1/provider-links/1/clients", headers=headers).json()
        assert [(c["externalClientId"], c["linkedToTenantId"]) for c in clients] == [
            ("6", 8),
            ("7", None),
        ]
        assert http.get("/api/v1/provider-links/2/clients", headers=headers).status_code == 404


def test_generated_sets_link_clients_and_flag_a_few_computers():
    data = immy_data_for(generate(300, seed=5, today=TODAY), seed=5, today=TODAY)
    assert [p["id"] for p in data.provider_links] == [1]
    tenants = {t["id"] for t in data.tenants}
    assert data.provider_clients and all(
        c["linkedToTenantId"] in tenants for c in data.provider_clients
    )
    flagged = [
        c for c in data.computers if c["isSandbox"] or c["isDevLab"] or c["excludeFromMaintenance"]
    ]
    assert 0 < len(flagged) < len(data.computers) / 10
