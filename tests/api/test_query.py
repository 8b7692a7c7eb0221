"""Every route refuses query names it does not document, and names given twice, with a short 400.

The check runs before a route's own code, so these calls need neither storage nor settings.
"""

from __future__ import annotations

import json
from dataclasses import replace
from urllib.parse import urlencode

import pytest

from shared.api.problems import PROBLEM_JSON
from shared.api.query import query_refusal, taken
from tests.api.calls import Request, send
from tests.registry import registered

# A call each HTTP function takes, with the query parameters it documents.
CALLS = {
    "targets": Request("targets", "GET", "/api/targets", {"software": "Huntress"}, {}, {}),
    "catalog": Request("catalog", "GET", "/api/catalog", {}, {}, {}),
    "openapi": Request("openapi", "GET", "/api/openapi.json", {}, {}, {}),
    "reconciliation": Request(
        "reconciliation", "GET", "/api/reconciliation", {"software": "Huntress"}, {}, {}
    ),
    "immybot_tags": Request("immybot_tags", "GET", "/api/immybot/tags", {}, {}, {}),
    "calendar": Request("calendar", "GET", "/api/calendar", {"days": "30"}, {}, {}),
    "changes": Request("changes", "GET", "/api/changes", {"software": "Huntress"}, {}, {}),
    "halo_webhook": Request("halo_webhook", "POST", "/api/halo/events", {}, {}, {}),
    "assets_plan": Request("assets_plan", "GET", "/api/assets/plan", {"client_id": "1"}, {}, {}),
    "setup_check": Request("setup_check", "GET", "/api/setup/check", {}, {}, {}),
    "rules": Request("rules", "GET", "/api/rules/Huntress", {}, {"key": "Huntress"}, {}),
    "sync_now": Request("sync_now", "POST", "/api/sync", {}, {}, {}),
    "sync_status": Request("sync_status", "GET", "/api/sync/status", {}, {}, {}),
    "sync_approve": Request("sync_approve", "POST", "/api/sync/approve", {"run_id": "r"}, {}, {}),
    "technician_tab": Request(
        "technician_tab", "GET", "/api/technician-tab/ticket/1", {}, {"ticket_id": "1"}, {}
    ),
}


def with_query(request: Request, pairs: list[tuple[str, str]]) -> Request:
    """`request` with `pairs` in its URL, and its params as the host hands them over (a repeated
    name's values joined with ",")."""
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        params.setdefault(name, []).append(value)
    joined = {name: ",".join(values) for name, values in params.items()}
    return replace(request, params=joined, query=urlencode(pairs))


def problem_of(request: Request) -> dict:
    response = send(request)
    assert response.status_code == 400, response.get_body()[:300]
    assert response.mimetype == PROBLEM_JSON
    return json.loads(response.get_body())


def test_every_http_function_has_a_call_here():
    http = {
        name
        for name, function in registered().items()
        if any(json.loads(b)["type"] == "httpTrigger" for b in function.get_raw_bindings())
    }
    assert set(CALLS) == http


@pytest.mark.parametrize("function", sorted(CALLS))
def test_an_unknown_query_parameter_is_a_400_naming_it(function):
    request = CALLS[function]
    problem = problem_of(with_query(request, [*request.params.items(), ("sofware", "x")]))
    assert problem["type"].endswith("/unknown-parameter")
    assert problem["parameters"] == ["sofware"] and "'sofware'" in problem["detail"]


@pytest.mark.parametrize("function", sorted(CALLS))
def test_a_parameter_given_twice_is_a_400_naming_it(function):
    # `code` (the key's query parameter) is one every route takes.
    request = CALLS[function]
    name, value = next(iter(request.params.items()), ("code", "key"))
    problem = problem_of(with_query(request, [(name, value), (name, "Other")]))
    assert problem["type"].endswith("/repeated-parameter")
    assert problem["parameters"] == [name] and f"'{name}'" in problem["detail"]


def test_the_host_joined_value_of_a_repeated_software_is_never_looked_up():
    # The host hands over "SentinelOne,Huntress"; the URL shows the name twice.
    request = with_query(CALLS["targets"], [("software", "SentinelOne"), ("software", "Huntress")])
    assert request.params == {"software": "SentinelOne,Huntress"}
    assert problem_of(request)["parameters"] == ["software"]


def test_thousands_of_unknown_parameters_get_a_short_answer():
    pairs = [(f"p{n}" * 50, "x") for n in range(5000)]
    response = send(with_query(CALLS["catalog"], pairs))
    assert response.status_code == 400
    assert len(response.get_body()) < 1024
    problem = json.loads(response.get_body())
    assert problem["count"] == 5000 and len(problem["parameters"]) == 3
    assert "and 4997 more" in problem["detail"]


@pytest.mark.parametrize("name", ["\x00" * 300, "\U0001f600" * 300, '"\\' * 300])
def test_a_name_is_shown_short_and_in_ascii_whatever_it_holds(name):
    problem = query_refusal("GET", "/api/catalog", {name: "x"})
    assert problem is not None and len(problem.body()) < 1024
    (shown,) = problem.model_dump()["parameters"]
    assert shown.isascii() and len(shown) <= 40


def test_documented_names_and_the_key_pass():
    url = "/api/targets?software=Huntress&expand=computers&code=k"
    assert query_refusal("GET", url, {}) is None
    assert taken("GET", "/api/targets") == {"software", "contract_type", "item", "expand", "code"}
    # Paths match as the host routes them: any case, a trailing slash.
    assert taken("GET", "/API/Rules/") == {"code"}
    # A method the path does not take keeps its own answer (405), not a 400 about the query.
    assert query_refusal("POST", "/api/targets?software=x", {}) is None
