"""The function app's wiring, read the way the Functions host reads it: from app.get_functions()."""

from __future__ import annotations

import json

import pytest
from azure.functions.decorators.function_app import Function

import function_app
from tests.registry import registered


def functions() -> dict[str, Function]:
    return registered()


def bindings(name: str) -> list[dict]:
    return [json.loads(raw) for raw in functions()[name].get_raw_bindings()]


def test_the_functions_are_registered():
    assert set(functions()) == {
        "sync_timer",
        "sync_queue",
        "sync_now",
        "sync_status",
        "sync_approve",
        "targets",
        "catalog",
        "openapi",
        "rules",
        "reconciliation",
        "immybot_tags",
        "assets_plan",
        "technician_tab",
        "setup_check",
    }


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
    ("name", "route", "method", "auth"),
    [
        ("targets", "targets", "GET", "FUNCTION"),
        ("catalog", "catalog", "GET", "FUNCTION"),
        ("openapi", "openapi.json", "GET", "FUNCTION"),
        ("reconciliation", "reconciliation", "GET", "FUNCTION"),
        ("assets_plan", "assets/plan", "GET", "FUNCTION"),
        ("technician_tab", "technician-tab/ticket/{ticket_id}", "GET", "FUNCTION"),
        ("sync_status", "sync/status", "GET", "FUNCTION"),
        ("sync_now", "sync", "POST", "ADMIN"),
        ("sync_approve", "sync/approve", "POST", "ADMIN"),
        ("setup_check", "setup/check", "GET", "ADMIN"),
    ],
)
def test_http_functions_routes_and_keys(name, route, method, auth):
    trigger = next(b for b in bindings(name) if b["type"] == "httpTrigger")
    assert trigger["route"] == route
    assert trigger["authLevel"] == auth
    assert trigger["methods"] == [method]


def test_rules_have_a_function_and_so_a_key_of_their_own():
    trigger = next(b for b in bindings("rules") if b["type"] == "httpTrigger")
    assert trigger["route"] == "{area:regex(^(rules|mappings)$)}/{key?}"
    assert sorted(trigger["methods"]) == ["DELETE", "GET", "PATCH", "PUT"]
    assert trigger["authLevel"] == "FUNCTION"


def test_manual_sync_goes_through_a_queue():
    out = next(b for b in bindings("sync_now") if b["type"] == "queue")
    trigger = next(b for b in bindings("sync_queue") if b["type"] == "queueTrigger")
    assert out["queueName"] == trigger["queueName"] == "sync-requests"
    assert out["direction"] == "OUT"


def test_no_function_json_anywhere():
    from pathlib import Path

    root = Path(function_app.__file__).parent
    found = [
        p
        for p in root.rglob("function.json")
        if "node_modules" not in p.parts and ".venv" not in p.parts
    ]
    assert found == []


def test_a_failed_manual_sync_is_not_retried_by_the_queue():
    """The queue's default maxDequeueCount (5) ran a failed sync five times."""
    from pathlib import Path

    host = json.loads((Path(function_app.__file__).parent / "host.json").read_text())
    # Functions v4 (Storage Queues extension 5.x): extensions.queues.maxDequeueCount.
    assert host["extensions"]["queues"]["maxDequeueCount"] == 1
    assert host["version"] == "2.0"
