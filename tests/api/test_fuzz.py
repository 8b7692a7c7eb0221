"""Fuzz every HTTP route with the bad inputs of tests/fuzz_corpus.json, through the real handlers.

Whatever a caller puts in a query, a route value, a header or a body, the answer
is a 4xx problem (the tab's too, for a caller that does not ask for HTML), or a 2xx/3xx where
the input happens to be valid; never an exception, never a 5xx. Schemathesis
(tests/api/test_schemathesis.py) cannot reach these: it sends only what the document describes,
encoded the way it chooses.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from sandbox.halo_data import demo_data
from shared.api.problems import PROBLEM_JSON
from shared.api.rules import import_rules
from shared.runtime.background import after_events
from shared.runtime.process import get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.api.calls import Request, send
from tests.registry import registered

pytestmark = pytest.mark.integration
CORPUS = json.loads((Path(__file__).parents[1] / "fuzz_corpus.json").read_text())
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
STRINGS: list[str] = CORPUS["strings"]
MAPPING = json.dumps({"immy_tenant_id": 5}).encode()
RULE = json.dumps({"contract_types": ["Managed Security"]}).encode()
WEBHOOK_SECRET = "fuzz-webhook-secret-0123456789abcdef"
WEBHOOK = {"Authorization": f"Bearer {WEBHOOK_SECRET}"}
EVENT = json.dumps({"event": "Client Updated", "object_id": 1}).encode()


def body_bytes(spec: dict[str, Any]) -> bytes:
    if "text" in spec:
        return spec["text"].encode()
    if "base64" in spec:
        return base64.b64decode(spec["base64"])
    if "json" in spec:
        return json.dumps(spec["json"]).encode()
    if "rules_count" in spec:
        rules = [
            {"software": f"Tool {n}", "contract_types": ["Managed Security"]}
            for n in range(spec["rules_count"])
        ]
        return json.dumps({"rules": rules}).encode()
    head = spec["repeat"] * spec["times"]
    return (head + spec.get("then", "") * spec.get("then_times", 0)).encode()


BODIES = [body_bytes(spec) for spec in CORPUS["bodies"]]


def requests(value: str) -> Iterator[Request]:
    """Every place a caller can put `value`, on every HTTP route."""
    yield from (
        Request("targets", "GET", "/api/targets", {kind: value}, {}, {})
        for kind in ("software", "contract_type", "item")
    )
    yield Request(
        "targets", "GET", "/api/targets", {"software": "Huntress", "expand": value}, {}, {}
    )
    yield Request("targets", "GET", "/api/targets", {"software": "Huntress", value: "x"}, {}, {})
    yield Request(
        "targets", "GET", "/api/targets", {"software": "Huntress"}, {}, {"If-None-Match": value}
    )
    for function, path in (
        ("catalog", "/api/catalog"),
        ("openapi", "/api/openapi.json"),
        ("sync_status", "/api/sync/status"),
        ("immybot_tags", "/api/immybot/tags"),
        ("assets_plan", "/api/assets/plan"),
        ("setup_check", "/api/setup/check"),
    ):
        yield Request(function, "GET", path, {value: value}, {}, {})
    # The setup check builds the Custom Tab URL from the Host header.
    yield Request("setup_check", "GET", "/api/setup/check", {}, {}, {"Host": value})
    yield Request("assets_plan", "GET", "/api/assets/plan", {"client_id": value}, {}, {})
    yield Request("reconciliation", "GET", "/api/reconciliation", {"software": value}, {}, {})
    yield Request(
        "reconciliation",
        "GET",
        "/api/reconciliation",
        {"software": "Huntress", "format": value},
        {},
        {},
    )
    for name in ("days", "software", "format", value):
        yield Request("calendar", "GET", "/api/calendar", {name: value}, {}, {})
    for name in ("since", "software", "format", value):
        yield Request("changes", "GET", "/api/changes", {name: value}, {}, {})
    for method in ("GET", "DELETE", "PUT"):
        body = RULE if method == "PUT" else b""
        route = {"area": "rules", "key": value}
        yield Request("rules", method, f"/api/rules/{value}", {}, route, {}, body)
    for method in ("PUT", "DELETE"):
        body = MAPPING if method == "PUT" else b""
        route = {"area": "mappings", "key": value}
        yield Request("rules", method, f"/api/mappings/{value}", {}, route, {}, body)
    yield Request("sync_approve", "POST", "/api/sync/approve", {"run_id": value}, {}, {})
    yield Request("sync_now", "POST", "/api/sync", {value: value}, {}, {})
    yield Request("halo_webhook", "POST", "/api/halo/events", {}, {}, {"Authorization": value})
    yield Request(
        "halo_webhook", "POST", "/api/halo/events", {}, {}, {"Authorization": f"Basic {value}"}
    )
    yield Request("halo_webhook", "POST", "/api/halo/events", {value: value}, {}, WEBHOOK, EVENT)
    yield Request(
        "technician_tab", "GET", f"/api/technician-tab/ticket/{value}", {}, {"ticket_id": value}, {}
    )
    yield Request(
        "technician_tab",
        "GET",
        "/api/technician-tab/ticket/1",
        {},
        {"ticket_id": "1"},
        {"X-MS-CLIENT-PRINCIPAL": value},
    )


def body_requests(body: bytes) -> Iterator[Request]:
    """Every route that reads a body, with `body`."""
    yield Request("rules", "PUT", "/api/rules/Fuzz", {}, {"area": "rules", "key": "Fuzz"}, {}, body)
    yield Request("rules", "PUT", "/api/mappings/1", {}, {"area": "mappings", "key": "1"}, {}, body)
    yield Request("rules", "PUT", "/api/rules", {}, {"area": "rules"}, {}, body)
    yield Request("halo_webhook", "POST", "/api/halo/events", {}, {}, WEBHOOK, body)


def judge(request: Request, response: func.HttpResponse) -> str | None:
    """What is wrong with an answer, or None."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.get_body()[:200]!r}"
    if status >= 400:
        # The tab too: these calls do not ask for HTML, as a browser would.
        if response.mimetype != PROBLEM_JSON:
            return f"{status} as {response.mimetype}, not {PROBLEM_JSON}"
        if json.loads(response.get_body())["status"] != status:
            return "the problem's status is not the answer's"
    return None


@pytest.fixture(scope="module")
def synced(azurite, tmp_path_factory):
    """The demo data synced once for the whole module (the fuzz calls only read or get refused)."""
    from sandbox.halo import HaloSandbox
    from shared.runtime.process import get_settings

    mp = pytest.MonkeyPatch()
    with HaloSandbox(demo_data(date.today())) as halo:
        for key, value in {
            "HALO_BASE_URL": halo.url,
            "HALO_CLIENT_ID": "sandbox-client",
            "HALO_CLIENT_SECRET": "sandbox-secret",
            "HALO_REQUESTS_PER_MINUTE": "100000",
            "TABLES_CONNECTION_STRING": azurite.connection_string,
            "TABLES_PREFIX": "fuzz",
            "TAB_ALLOWED_GROUP": "",
            "HALO_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }.items():
            mp.setenv(key, value)
        get_settings.cache_clear()
        get_store.cache_clear()
        import_rules(get_store(), DEMO_RULES.read_bytes(), date.today())
        assert asyncio.run(run_sync()).outcome is Outcome.SUCCEEDED
        yield
        after_events.wait(timeout=120)  # the webhook's counts, written after each answer
    mp.undo()
    get_settings.cache_clear()
    get_store.cache_clear()


def test_every_http_function_is_fuzzed():
    fuzzed = {r.function for r in requests("x")} | {r.function for r in body_requests(b"")}
    http = {
        name
        for name, function in registered().items()
        if any(json.loads(b)["type"] == "httpTrigger" for b in function.get_raw_bindings())
    }
    assert fuzzed == http


@pytest.mark.parametrize("value", STRINGS, ids=[f"s{n}" for n in range(len(STRINGS))])
def test_bad_strings_anywhere_are_4xx_problems(synced, value):
    wrong = []
    for request in requests(value):
        try:
            response = send(request)
        except Exception as error:  # the point of the test: nothing may escape a handler
            wrong.append(f"{request.method} {request.path} {request.params}: raised {error!r}")
            continue
        verdict = judge(request, response)
        if verdict:
            wrong.append(f"{request.method} {request.path} {request.params}: {verdict}")
    assert not wrong, wrong


@pytest.mark.parametrize("body", BODIES, ids=[f"b{n}" for n in range(len(BODIES))])
def test_bad_bodies_are_4xx_problems(synced, body):
    wrong = []
    for request in body_requests(body):
        try:
            response = send(request)
        except Exception as error:
            wrong.append(f"{request.method} {request.path}: raised {error!r}")
            continue
        verdict = judge(request, response)
        if verdict:
            wrong.append(f"{request.method} {request.path}: {verdict}")
    assert not wrong, wrong
