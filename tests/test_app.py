"""The function app's wiring, read the way the Functions host reads it: from app.get_functions()."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from azure.functions.decorators.function_app import Function

import function_app
from shared.problems import PROBLEM_JSON

# get_functions() validates as it indexes and refuses a second call, as the host calls it once.
FUNCTIONS = {f.get_function_name(): f for f in function_app.app.get_functions()}


def functions() -> dict[str, Function]:
    return FUNCTIONS


def bindings(name: str) -> list[dict]:
    return [json.loads(raw) for raw in functions()[name].get_raw_bindings()]


def test_the_three_functions_are_registered():
    assert set(functions()) == {"sync_timer", "targets", "technician_tab"}


def test_sync_timer_runs_on_the_configured_schedule():
    (trigger,) = bindings("sync_timer")
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%SYNC_SCHEDULE%"
    assert trigger["runOnStartup"] is False
    retry = functions()["sync_timer"].get_settings_dict("retry_policy")
    assert retry is not None
    assert retry["strategy"] == "exponential_backoff"
    assert int(retry["max_retry_count"]) >= 1


@pytest.mark.parametrize(
    ("name", "route"),
    [("targets", "targets"), ("technician_tab", "technician-tab/ticket/{ticket_id}")],
)
def test_http_functions_require_a_function_key(name, route):
    trigger = next(b for b in bindings(name) if b["type"] == "httpTrigger")
    assert trigger["route"] == route
    assert trigger["authLevel"] == "FUNCTION"
    assert trigger["methods"] == ["GET"]


@pytest.mark.parametrize(
    ("name", "url", "params"),
    [
        ("targets", "/api/targets?software=Huntress", {}),
        ("technician_tab", "/api/technician-tab/ticket/42", {"ticket_id": "42"}),
    ],
)
def test_unbuilt_endpoints_answer_501_problem_json(name, url, params):
    handler = functions()[name].get_user_function()
    request = func.HttpRequest("GET", url, body=b"", route_params=params)
    response = handler(request)
    assert response.status_code == 501
    assert response.mimetype == PROBLEM_JSON
    body = json.loads(response.get_body())
    assert body["status"] == 501
    assert body["title"] == "Not Implemented"


def test_no_function_json_anywhere():
    from pathlib import Path

    root = Path(function_app.__file__).parent
    found = [
        p
        for p in root.rglob("function.json")
        if "node_modules" not in p.parts and ".venv" not in p.parts
    ]
    assert found == []
