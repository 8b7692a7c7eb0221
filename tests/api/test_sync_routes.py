"""The sync blueprint's handlers, called the way the host calls them, against Azurite and the sandbox."""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import date

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage as TriggerMessage
from azure.functions.timer import TimerRequest

from sandbox.halo_data import demo_data
from shared.api.problems import PROBLEM_JSON
from shared.runtime.process import get_settings
from tests.registry import handler

pytestmark = pytest.mark.integration
_prefixes = itertools.count()


class Out:
    """What the host passes for an output binding."""

    def __init__(self) -> None:
        self.value = None

    def set(self, value) -> None:
        self.value = value

    def get(self):
        return self.value


def get(name: str, url: str, method: str = "GET", **params) -> func.HttpResponse:
    request = func.HttpRequest(method, url, body=b"", params=params)
    if name == "sync_now":
        out = Out()
        response = handler(name)(request, out)
        response.queued = out.value
        return response
    return handler(name)(request)


def status() -> dict:
    response = get("sync_status", "/api/sync/status")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    return json.loads(response.get_body())


def test_status_before_any_sync(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url)
    assert status() == {
        "immybot": {
            "configured": False,
            "tenants": 0,
            "computers": 0,
            "note": "ImmyBot is not configured: targets carry no tenants",
        },
        "current": None,
        "held": None,
        "last_runs": [],
        "events": None,
    }


def test_manual_sync_is_queued_then_run_by_the_queue_function(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url)
    response = get("sync_now", "/api/sync", method="POST")
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/sync/status"
    assert "requested_at" in json.loads(response.queued)

    asyncio.run(handler("sync_queue")(func.QueueMessage(body=response.queued.encode())))
    seen = status()
    assert seen["current"]["generation"]
    assert seen["current"]["age_seconds"] >= 0
    assert seen["last_runs"][0]["outcome"] == "succeeded"
    assert seen["last_runs"][0]["read"]["clients"] == len(demo_data(date.today()).clients)


def test_a_manual_sync_runs_once_and_a_failed_one_is_not_retried(configure, halo_sandbox):
    # host.json retries queue messages (for HaloPSA's events); a manual sync is not retried.
    configure(halo_sandbox(demo_data(date.today())).url, HALO_CLIENT_SECRET="wrong-secret")
    queue_function = handler("sync_queue")
    asyncio.run(queue_function(TriggerMessage(body=b"{}", dequeue_count=1)))  # no raise
    assert [r["outcome"] for r in status()["last_runs"]] == ["failed"]
    # Delivered again (its run died, or the host retried): not run a second time.
    asyncio.run(queue_function(TriggerMessage(body=b"{}", dequeue_count=2)))
    assert [r["outcome"] for r in status()["last_runs"]] == ["failed"]


def test_a_failing_timer_run_fails_the_invocation_and_is_recorded(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url, HALO_CLIENT_SECRET="wrong-secret")
    with pytest.raises(RuntimeError, match="failed: HaloPSA POST /auth/token: HTTP 401") as caught:
        asyncio.run(handler("sync_timer")(TimerRequest(past_due=False)))
    assert "wrong-secret" not in str(caught.value)
    run = status()["last_runs"][0]
    assert run["outcome"] == "failed"
    assert "invalid_client" in run["error"]
    assert status()["current"] is None


def test_approve_with_nothing_held_is_a_conflict(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url)
    response = get("sync_approve", "/api/sync/approve", method="POST")
    assert response.status_code == 409
    assert response.mimetype == PROBLEM_JSON
    assert json.loads(response.get_body())["detail"] == "no held sync run to approve"


def test_missing_settings_are_a_named_503_problem(configure, monkeypatch):
    configure("https://msp.halopsa.com")
    monkeypatch.delenv("HALO_CLIENT_SECRET")
    monkeypatch.setenv("HALO_CLIENT_ID", "")
    get_settings.cache_clear()
    response = get("sync_status", "/api/sync/status")
    assert response.status_code == 503
    assert response.mimetype == PROBLEM_JSON
    body = json.loads(response.get_body())
    assert body["settings"] == ["HALO_CLIENT_ID", "HALO_CLIENT_SECRET"]
    assert response.headers["Retry-After"] == "300"


def test_a_503_for_settings_names_every_broken_one_at_once(configure, monkeypatch):
    configure("https://msp.halopsa.com", IMMY_BASE_URL="https://msp.immy.bot")
    monkeypatch.delenv("HALO_CLIENT_SECRET")
    for key in ("IMMY_TENANT_ID", "IMMY_CLIENT_ID", "IMMY_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    get_settings.cache_clear()
    response = get("sync_status", "/api/sync/status")
    assert response.status_code == 503
    assert json.loads(response.get_body())["settings"] == [
        "HALO_CLIENT_SECRET",
        "IMMY_CLIENT_ID",
        "IMMY_CLIENT_SECRET",
        "IMMY_TENANT_ID",
    ]


def test_approving_the_tag_of_no_rule_is_404_naming_it(configure, halo_sandbox):
    from pathlib import Path

    from shared.api.rules import import_rules
    from shared.runtime.process import get_store

    configure(halo_sandbox(demo_data(date.today())).url)
    rules = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
    import_rules(get_store(), rules.read_bytes(), date.today())
    unknown = get("sync_approve", "/api/sync/approve", method="POST", tag="Foo")
    assert unknown.status_code == 404
    assert unknown.mimetype == PROBLEM_JSON
    problem = json.loads(unknown.get_body())
    assert "'Foo'" in problem["detail"]
    assert problem["known"] == ["Huntress", "Microsoft 365 Apps", "SentinelOne"]
    # A rule's tag with nothing held is the conflict it was.
    held = get("sync_approve", "/api/sync/approve", method="POST", tag="huntress")
    assert held.status_code == 409
    assert json.loads(held.get_body())["type"].endswith("/nothing-held")
    # An empty tag is a mistake, never "approve whatever is held".
    assert get("sync_approve", "/api/sync/approve", method="POST", tag="").status_code == 400
