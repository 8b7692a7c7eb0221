"""The HaloPSA sandbox: its data sets, and its API over real HTTP on loopback."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.halo import RESOURCES, Faults, HaloSandbox
from sandbox.halo_data import HaloDataSet, demo_data, generate, inject_malformed
from shared.halo_models import (
    Asset,
    Client,
    Contract,
    Item,
    RecurringInvoice,
    Site,
    Ticket,
    User,
    as_date,
    parse_records,
)

ROOT = Path(__file__).resolve().parents[1]
TODAY = date(2025, 6, 15)
CREDS = {
    "grant_type": "client_credentials",
    "client_id": "sandbox-client",
    "client_secret": "sandbox-secret",
}
MODELS = {
    "clients": Client,
    "sites": Site,
    "contracts": Contract,
    "invoices": RecurringInvoice,
    "items": Item,
    "tickets": Ticket,
    "assets": Asset,
    "users": User,
}
# The targets the demo module's docstring promises; hand-computed from the table there.
HUNTRESS = {"Contoso Ltd", "Fabrikam, Inc.", "Wide World Importers"}
SENTINELONE_BY_ITEM = {"Contoso Ltd", "Wide World Importers", "Woodgrove Bank"}
SENTINELONE_BY_NAME = SENTINELONE_BY_ITEM | {"Northwind Traders"}


@pytest.fixture
def demo() -> HaloDataSet:
    return demo_data(TODAY)


@pytest.fixture(scope="module")
def big() -> HaloDataSet:
    return generate(5_000, seed=1, today=TODAY)


@pytest.fixture
def sandbox(demo: HaloDataSet) -> Iterator[HaloSandbox]:
    with HaloSandbox(demo) as halo:
        yield halo


@pytest.fixture
def http(sandbox: HaloSandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sandbox.url, timeout=10) as client:
        yield client


def bearer(http: httpx.Client, **params: str) -> dict[str, str]:
    response = http.post("/auth/token", data=CREDS, params=params)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def read_all(http: httpx.Client, headers: dict[str, str], resource: str, **params: Any) -> list:
    """Every record of a resource, page by page, checking record_count on every page."""
    key = RESOURCES[resource]
    records: list = []
    page_no, total = 1, None
    while True:
        query = {"pageinate": "true", "page_size": 37, "page_no": page_no, **params}
        body = http.get(f"/api/{resource}", params=query, headers=headers).json()
        total = body["record_count"] if total is None else total
        assert body["record_count"] == total
        assert (body["page_no"], body["page_size"]) == (page_no, 37)
        records.extend(body[key])
        if len(body[key]) < 37:
            return records
        page_no += 1


# -- data sets -------------------------------------------------------------------------------


def test_generate_is_deterministic() -> None:
    first = generate(200, seed=7, today=TODAY)
    assert first.to_json() == generate(200, seed=7, today=TODAY).to_json()
    assert first.to_json() != generate(200, seed=8, today=TODAY).to_json()


def test_generate_5000_clients_has_realistic_proportions(big: HaloDataSet) -> None:
    counts = big.counts()
    assert counts["clients"] == 5_000
    assert 14_000 <= counts["contracts"] <= 16_000
    assert 9_500 <= counts["invoices"] <= 10_500
    assert all(len(invoice["lines"]) == 3 for invoice in big.invoices)
    assert counts["invoice_lines"] == 3 * counts["invoices"]
    assert 9_000 <= counts["sites"] <= 11_000
    assert 18_000 <= counts["users"] <= 22_000
    assert 27_000 <= counts["assets"] <= 33_000
    assert 9_000 <= counts["tickets"] <= 11_000
    assert counts["items"] == 12

    def share(records: list, test: Any) -> float:
        return sum(1 for r in records if test(r)) / len(records)

    assert 0.02 <= share(big.clients, lambda c: c["inactive"]) <= 0.06

    def running(contract: dict) -> bool:
        return contract["active"] and not contract["expired"] and contract["start_date"] <= today

    today = f"{TODAY}T00:00:00"
    assert 0.75 <= share(big.contracts, running) <= 0.85
    assert 0.05 <= share(big.contracts, lambda c: c["expired"]) <= 0.11
    assert 0.03 <= share(big.contracts, lambda c: not c["active"]) <= 0.07
    assert 0.03 <= share(big.contracts, lambda c: c["start_date"] > today) <= 0.07
    assert share(big.contracts, lambda c: c["end_date"] is None) > 0.03
    assert 0.03 <= share(big.invoices, lambda i: i["disabled"]) <= 0.07
    lines = [line for invoice in big.invoices for line in invoice["lines"]]
    assert 0.015 <= share(lines, lambda line: line["qty_order"] == 0) <= 0.045
    assert 0.015 <= share(lines, lambda line: line["enddate"] is not None) <= 0.045
    for name in ("clients", "contracts", "invoices", "users", "assets", "tickets"):
        ids = [record["id"] for record in getattr(big, name)]
        assert ids == list(range(1, len(ids) + 1)), name
    line_ids = [line["id"] for line in lines]
    assert len(set(line_ids)) == len(line_ids)


@pytest.mark.parametrize("source", ["demo", "generated"])
def test_every_record_reads_cleanly_with_the_app_models(demo: HaloDataSet, source: str) -> None:
    data = demo if source == "demo" else generate(300, seed=3, today=TODAY)
    for name, model in MODELS.items():
        parsed = parse_records(model, getattr(data, name))
        assert parsed.rejects == [], name
        assert len(parsed.records) == len(getattr(data, name))


def _covered_by_contract(data: HaloDataSet, contract_type: str, today: date) -> set[str]:
    clients = {c.id: c for c in parse_records(Client, data.clients).records}
    names = set()
    for contract in parse_records(Contract, data.contracts).records:
        start, end = as_date(contract.start_date), as_date(contract.end_date)
        if (
            contract.contracttype_name == contract_type
            and contract.active
            and not contract.expired
            and (start is None or start <= today)
            and (end is None or today <= end)
            and not clients[contract.client_id].inactive
        ):
            names.add(clients[contract.client_id].name)
    return names


def _covered_by_item(data: HaloDataSet, item: Item, today: date, by_name: bool) -> set[str]:
    clients = {c.id: c for c in parse_records(Client, data.clients).records}
    names = set()
    for invoice in parse_records(RecurringInvoice, data.invoices).records:
        if invoice.disabled or clients[invoice.client_id].inactive:
            continue
        for line in invoice.lines:
            start, end = as_date(line.startdate), as_date(line.enddate)
            matches = line.item_id == item.id or line.item_code == item.internalreference
            if by_name:
                matches = matches or line.item_shortdescription.strip().lower() == item.name.lower()
            if (
                matches
                and line.qty_order > 0
                and (start is None or start <= today)
                and (end is None or today <= end)
            ):
                names.add(clients[invoice.client_id].name)
    return names


@pytest.mark.parametrize("today", [TODAY, date(2024, 2, 29), date(2031, 12, 31)])
def test_demo_targets_match_the_documented_table(today: date) -> None:
    data = demo_data(today)
    s1 = next(i for i in parse_records(Item, data.items).records if i.name.startswith("Sentinel"))
    assert _covered_by_contract(data, "Managed Security", today) == HUNTRESS
    assert _covered_by_item(data, s1, today, by_name=False) == SENTINELONE_BY_ITEM
    assert _covered_by_item(data, s1, today, by_name=True) == SENTINELONE_BY_NAME


def test_demo_contains_every_deliberate_case(demo: HaloDataSet) -> None:
    clients = {c["id"]: c for c in demo.clients}
    assert {c["name"] for c in clients.values() if c["inactive"]} == {"Litware Inc"}
    security = [c for c in demo.contracts if c["contracttype_name"] == "Managed Security"]
    day = TODAY.isoformat()
    soon = (TODAY + timedelta(days=30)).isoformat()
    assert any(c["expired"] and c["end_date"] < day for c in security)
    assert any(day <= c["end_date"] <= soon for c in security if c["end_date"])
    assert any(c["start_date"] > day for c in security)
    assert any(c["active"] is False for c in security)
    assert any(clients[c["client_id"]]["inactive"] for c in security)
    assert {c["contracttype_name"] for c in demo.contracts} == {
        "Managed Security",
        "Managed Services",
        "Backup",
        "Break-Fix Block Hours",
    }
    assert {
        "Huntress Managed EDR",
        "SentinelOne Complete",
        "Microsoft 365 Business Premium",
        "Cloud Backup",
        "Managed Services per device",
    } <= {item["name"] for item in demo.items}

    s1_lines = [
        (invoice, line)
        for invoice in demo.invoices
        for line in invoice["lines"]
        if line["item_shortdescription"].strip().lower() == "sentinelone complete"
    ]
    live = {i["client_id"] for i, line in s1_lines if line["qty_order"] > 0 and not i["disabled"]}
    assert len(live) >= 4
    assert any(invoice["disabled"] for invoice, _ in s1_lines)
    assert any(line["qty_order"] == 0 for _, line in s1_lines)
    assert any(line["enddate"] and line["enddate"] < day for _, line in s1_lines)
    sloppy = [line for _, line in s1_lines if not line["_itemid"]]
    assert len(sloppy) == 1
    assert sloppy[0]["item_shortdescription"] != "SentinelOne Complete"
    assert sloppy[0]["item_code"] == ""

    users_per_client = {u["client_id"] for u in demo.users if "@" in u["emailaddress"]}
    assert users_per_client == set(clients)
    assert {t["client_id"] for t in demo.tickets} == set(clients)
    assert all(a["key_field"] for a in demo.assets)


def test_dump_and_load_round_trip(tmp_path: Path, demo: HaloDataSet) -> None:
    path = tmp_path / "halo.json"
    demo.dump(path)
    assert set(json.loads(path.read_text())) == set(MODELS)
    loaded = HaloDataSet.load(path)
    assert loaded == demo
    assert loaded.counts() == demo.counts()
    with pytest.raises(ValueError, match="contract"):
        HaloDataSet.from_json({"contract": []})


def test_inject_malformed_reports_exactly_the_broken_records(demo: HaloDataSet) -> None:
    broken, marked = inject_malformed(demo, 6, seed=4)
    assert len(marked) == 6
    assert {kind for kind, _ in marked} == {"contracts", "invoices"}
    rejected = {
        (r.kind, int(r.record_id))
        for model, records in ((Contract, broken.contracts), (RecurringInvoice, broken.invoices))
        for r in parse_records(model, records).rejects
    }
    assert rejected == set(marked)
    assert parse_records(Contract, demo.contracts).rejects == []  # the original is untouched
    assert inject_malformed(demo, 6, seed=4)[1] == marked


# -- token endpoint --------------------------------------------------------------------------


def test_token_for_good_credentials(http: httpx.Client) -> None:
    response = http.post("/auth/token", data={**CREDS, "scope": "all"})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == "all"
    assert len(body["access_token"]) >= 32


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({**CREDS, "client_secret": "wrong"}, 401, "invalid_client"),
        ({**CREDS, "client_id": "someone-else"}, 401, "invalid_client"),
        ({**CREDS, "grant_type": "password"}, 400, "unsupported_grant_type"),
        ({k: v for k, v in CREDS.items() if k != "grant_type"}, 400, "invalid_request"),
    ],
)
def test_token_refusals(http: httpx.Client, form: dict, status: int, error: str) -> None:
    response = http.post("/auth/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error


def test_token_requires_the_configured_tenant(demo: HaloDataSet) -> None:
    with HaloSandbox(demo, tenant="acme") as halo, httpx.Client(base_url=halo.url) as http:
        for params in ({}, {"tenant": "other"}):
            response = http.post("/auth/token", data=CREDS, params=params)
            assert response.status_code == 400
            assert response.json()["error"] == "invalid_request"
        headers = bearer(http, tenant="acme")
        assert http.get("/api/Client", headers=headers).status_code == 200


def test_api_needs_a_valid_token(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic x"}):
        response = http.get("/api/Client", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_token"


def test_expired_token_is_refused(sandbox: HaloSandbox, http: httpx.Client) -> None:
    sandbox.set_faults(Faults(token_ttl_seconds=0))
    response = http.post("/auth/token", data=CREDS)
    assert response.json()["expires_in"] == 0
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    assert http.get("/api/Client", headers=headers).status_code == 401


# -- lists -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource", "key", "params"),
    [
        ("ClientContract", "contracts", {"includeinactive": "true"}),
        ("RecurringInvoice", "invoices", {"includeinactive": "true", "includelines": "true"}),
        ("Client", "clients", {"includeinactive": "true"}),
        ("Users", "users", {"includeinactive": "true"}),
        ("Asset", "assets", {}),
    ],
)
def test_paging_returns_every_record_exactly_once(resource: str, key: str, params: dict) -> None:
    data = generate(150, seed=5, today=TODAY)
    with HaloSandbox(data) as halo, httpx.Client(base_url=halo.url) as http:
        headers = bearer(http)
        records = read_all(http, headers, resource, **params)
        ids = [r["id"] for r in records]
        assert len(ids) == len(set(ids))
        assert ids == sorted(ids)
        everything = http.get(f"/api/{resource}", params=params, headers=headers).json()
        assert everything["record_count"] == len(everything[key]) == len(records)
        assert records == everything[key]
        if params.get("includeinactive"):
            assert sorted(ids) == sorted(r["id"] for r in getattr(data, key))
        capped = http.get(f"/api/{resource}", params={**params, "count": 5}, headers=headers)
        assert len(capped.json()[key]) == 5


def test_page_past_the_end_is_empty(http: httpx.Client) -> None:
    headers = bearer(http)
    params = {"pageinate": "true", "page_size": 50, "page_no": 9}
    body = http.get("/api/ClientContract", params=params, headers=headers).json()
    assert body["contracts"] == []
    assert body["record_count"] > 0


def test_includeinactive_and_includelines(http: httpx.Client) -> None:
    headers = bearer(http)

    def get(resource: str, **params: str) -> dict:
        response = http.get(f"/api/{resource}", params=params, headers=headers)
        assert response.status_code == 200
        return response.json()

    names = {c["name"] for c in get("Client")["clients"]}
    assert "Litware Inc" not in names
    assert "Litware Inc" in {c["name"] for c in get("Client", includeinactive="true")["clients"]}
    assert all(c["active"] for c in get("ClientContract")["contracts"])
    assert any(not c["active"] for c in get("ClientContract", includeinactive="true")["contracts"])
    invoices = get("RecurringInvoice")["invoices"]
    assert invoices and all("lines" not in i and not i["disabled"] for i in invoices)
    with_lines = get("RecurringInvoice", includelines="true", includeinactive="true")["invoices"]
    assert any(i["disabled"] for i in with_lines)
    assert sum(len(i["lines"]) for i in with_lines) == 16
    assert all(not s["inactive"] for s in get("Site")["sites"])
    assert all(not a["inactive"] for a in get("Asset")["assets"])
    assert all(not u["inactive"] for u in get("Users")["users"])


def test_client_id_filter(http: httpx.Client) -> None:
    headers = bearer(http)
    assets = http.get("/api/Asset", params={"client_id": 1}, headers=headers).json()
    assert [a["key_field"] for a in assets["assets"]] == [
        "CONTOSO-WS01",
        "CONTOSO-LT02",
        "CONTOSO-SRV01",
        "CONTOSO-LAB01",
    ]
    assert assets["record_count"] == 4
    users = http.get("/api/Users", params={"client_id": 7}, headers=headers).json()["users"]
    assert {u["emailaddress"] for u in users} == {
        "hannah.weiss@woodgrove.example.com",
        "luis.moreno@woodgrove.example.com",
    }
    none = http.get("/api/Users", params={"client_id": 999}, headers=headers).json()
    assert none == {"record_count": 0, "users": []}


def test_ticket_by_id(http: httpx.Client) -> None:
    headers = bearer(http)
    ticket = http.get("/api/Tickets/7", headers=headers)
    assert ticket.status_code == 200
    assert ticket.json()["client_name"] == "Wide World Importers"
    missing = http.get("/api/Tickets/4242", headers=headers)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/Client?pageinate=true&page_no=abc", 400),
        ("/api/Client?pageinate=true&page_size=0", 400),
        ("/api/Users?client_id=x", 400),
        ("/api/Tickets/abc", 400),
        ("/api/NoSuchThing", 404),
        ("/nowhere", 404),
    ],
)
def test_bad_requests_get_json_errors(http: httpx.Client, path: str, status: int) -> None:
    response = http.get(path, headers=bearer(http))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert "error" in response.json()


# -- faults ----------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(sandbox: HaloSandbox, http: httpx.Client) -> None:
    headers = bearer(http)
    sandbox.set_faults(Faults(rate_limit_per_second=3))
    responses = [http.get("/api/Item", headers=headers) for _ in range(12)]
    assert responses[0].status_code == 200
    limited = [r for r in responses if r.status_code == 429]
    assert limited
    assert limited[0].headers["retry-after"] == "1"
    assert limited[0].json()["error"] == "rate_limited"
    assert sandbox.stats()["statuses"]["429"] == len(limited)


def test_fail_rule_on_the_last_page(sandbox: HaloSandbox, http: httpx.Client) -> None:
    sandbox.set_data(generate(120, seed=6, today=TODAY))
    headers = bearer(http)
    rule = {"resource": "RecurringInvoice", "page": "last", "status": 500, "times": 1}
    sandbox.set_faults(Faults(fail=[rule]))
    params = {"pageinate": "true", "page_size": 50, "includelines": "true"}
    first = http.get("/api/RecurringInvoice", params={**params, "page_no": 1}, headers=headers)
    assert first.status_code == 200
    last_page = -(-first.json()["record_count"] // 50)
    assert last_page > 1
    last = {**params, "page_no": last_page}
    assert http.get("/api/RecurringInvoice", params=last, headers=headers).status_code == 500
    assert http.get("/api/RecurringInvoice", params=last, headers=headers).status_code == 200

    sandbox.set_faults(Faults(fail=[{**rule, "times": None, "status": 502}]))
    for _ in range(3):
        assert http.get("/api/RecurringInvoice", params=last, headers=headers).status_code == 502
    assert http.get("/api/ClientContract", params=last, headers=headers).status_code == 200


def test_revoked_tokens_give_401_then_a_fresh_token_works(
    sandbox: HaloSandbox, http: httpx.Client
) -> None:
    sandbox.set_faults(Faults(revoke_tokens_after=3))
    headers = bearer(http)
    for _ in range(3):
        assert http.get("/api/Client", headers=headers).status_code == 200
    assert http.get("/api/Client", headers=headers).status_code == 401
    fresh = bearer(http)
    for _ in range(5):
        assert http.get("/api/Client", headers=fresh).status_code == 200


def test_faults_over_http_error_rate_and_stats(sandbox: HaloSandbox, http: httpx.Client) -> None:
    headers = bearer(http)
    faults = {"error_rate": 1.0, "error_status": 503, "latency_ms": 20}
    put = http.put("/_sandbox/faults", json=faults)
    assert put.status_code == 200
    assert sandbox.faults.error_rate == 1.0
    started = time.perf_counter()
    assert http.get("/api/Client", headers=headers).status_code == 503
    assert time.perf_counter() - started >= 0.02
    assert http.put("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert http.put("/_sandbox/faults", json={"nonsense": 1}).status_code == 400
    assert http.get("/_sandbox/faults").json()["error_status"] == 503

    stats = http.get("/_sandbox/stats").json()
    assert stats["requests"] == {"Client": 1, "auth/token": 1}
    assert stats["statuses"] == {"200": 1, "503": 1}
    assert stats["total"] == 2
    assert http.post("/_sandbox/reset").status_code == 200
    assert http.get("/_sandbox/stats").json()["total"] == 0


def test_100_concurrent_keep_alive_requests(big: HaloDataSet) -> None:
    with HaloSandbox(big) as halo:
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        with httpx.Client(base_url=halo.url, limits=limits, timeout=30) as http:
            headers = bearer(http)

            def page(number: int) -> int:
                params = {"pageinate": "true", "page_size": 100, "page_no": number % 150 + 1}
                params["includeinactive"] = "true"
                response = http.get("/api/ClientContract", params=params, headers=headers)
                assert len(response.json()["contracts"]) == 100
                return response.status_code

            with ThreadPoolExecutor(max_workers=100) as pool:
                statuses = list(pool.map(page, range(1, 201)))
            assert statuses == [200] * 200
            # Still serving after the burst (speed is bench/halo_read.py's to measure).
            params = {"pageinate": "true", "page_size": 100, "page_no": 120}
            assert http.get("/api/RecurringInvoice", params=params, headers=headers).is_success
        assert halo.stats()["requests"]["ClientContract"] == 200


# -- command line ----------------------------------------------------------------------------


def _read_line(stream: Any, timeout: float) -> str:
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError("the sandbox printed nothing")
        return stream.readline()


def test_cli_serves_until_terminated() -> None:
    command = [sys.executable, "-m", "sandbox.halo", "--port", "0", "--clients", "20"]
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = _read_line(proc.stdout, 30)
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ").strip()
        with httpx.Client(base_url=url) as http:
            headers = bearer(http)
            body = http.get("/api/Client", params={"includeinactive": "true"}, headers=headers)
            assert body.json()["record_count"] == 20
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        finally:
            proc.stdout.close()
            stderr = proc.stderr.read()
            proc.stderr.close()
    assert code == 0, stderr
    assert stderr == ""


def test_cli_dump_alone_writes_the_data_and_exits(tmp_path: Path) -> None:
    path = tmp_path / "halo.json"
    command = [sys.executable, "-m", "sandbox.halo", "--clients", "5", "--malformed", "2"]
    done = subprocess.run(
        [*command, "--dump", str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    data = HaloDataSet.load(path)
    assert len(data.clients) == 5
    assert len(parse_records(Contract, data.contracts).rejects) == 1
    assert len(parse_records(RecurringInvoice, data.invoices).rejects) == 1
