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
        "calendar",
        "changes",
        "immybot_tags",
        "assets_plan",
        "technician_tab",
        "setup_check",
        "halo_webhook",
        "halo_events",
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
        ("calendar", "calendar", "GET", "FUNCTION"),
        ("changes", "changes", "GET", "FUNCTION"),
        ("assets_plan", "assets/plan", "GET", "FUNCTION"),
        ("technician_tab", "technician-tab/ticket/{ticket_id}", "GET", "FUNCTION"),
        ("sync_status", "sync/status", "GET", "FUNCTION"),
        ("sync_now", "sync", "POST", "ADMIN"),
        ("sync_approve", "sync/approve", "POST", "ADMIN"),
        ("setup_check", "setup/check", "GET", "ADMIN"),
        # HaloPSA sends no function key: the route checks HALO_WEBHOOK_SECRET itself.
        ("halo_webhook", "halo/events", "POST", "ANONYMOUS"),
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


def test_the_webhook_queues_one_message_per_client_as_a_list():
    out = next(b for b in bindings("halo_webhook") if b["type"] == "queue")
    assert (out["queueName"], out["direction"]) == ("halo-events", "OUT")
    # The worker turns a list set on an output binding into one message each only when the
    # parameter is annotated with typing's List (not list[str]).
    from azure.functions import _abc, meta

    annotation = functions()["halo_webhook"].get_user_function().__annotations__["events"]
    (inner,) = annotation.__args__
    assert meta.is_iterable_type_annotation(inner, (_abc.QueueMessage, str, bytes))


def test_no_function_json_anywhere():
    from pathlib import Path

    root = Path(function_app.__file__).parent
    found = [
        p
        for p in root.rglob("function.json")
        if "node_modules" not in p.parts and ".venv" not in p.parts
    ]
    assert found == []


def test_queue_messages_are_retried_a_few_times_a_minute_apart():
    """HaloPSA's events are retried (a busy sync lease, HaloPSA's 429s) before the poison queue."""
    from pathlib import Path

    host = json.loads((Path(function_app.__file__).parent / "host.json").read_text())
    # Functions v4 (Storage Queues extension 5.x): extensions.queues applies to every queue.
    assert host["extensions"]["queues"]["maxDequeueCount"] == 5
    assert host["extensions"]["queues"]["visibilityTimeout"] == "00:01:00"
    assert host["version"] == "2.0"
    # The refresh gives up (poison queue, with the reason) on the host's last attempt.
    from shared.sync.event_refresh import MAX_DEQUEUE

    assert MAX_DEQUEUE == host["extensions"]["queues"]["maxDequeueCount"]


def test_halo_events_are_refreshed_by_a_queue_function_with_a_poison_output():
    trigger = next(b for b in bindings("halo_events") if b["type"] == "queueTrigger")
    poison = next(b for b in bindings("halo_events") if b["type"] == "queue")
    assert trigger["queueName"] == "halo-events"
    assert (poison["queueName"], poison["direction"]) == ("halo-events-poison", "OUT")
