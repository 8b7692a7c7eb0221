"""What the ImmyBot tag tests against both sandboxes share: the registered handlers called in
process, the tag view, rule edits, sync runs and the ImmyBot sandbox's tag write count."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import azure.functions as func

from sandbox.immybot import ImmyBotSandbox
from shared.sync.run import run_sync
from shared.sync.runs import Outcome, SyncReport
from tests.registry import handler

DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
TAG_WRITES = ("add_tags", "remove_tags", "computer_add_tags", "computer_remove_tags")


def call(name: str, url: str, method: str = "GET", body: bytes = b"", route=None, **params):
    request = func.HttpRequest(method, url, body=body, params=params, route_params=route or {})
    return handler(name)(request)


def mapped_targets(software: str) -> set[int]:
    response = call("targets", "/api/targets", software=software)
    assert response.status_code == 200, response.get_body()
    return {t["immy_tenant_id"] for t in json.loads(response.get_body())["targets"]} - {None}


def tag_view() -> dict[str, dict]:
    response = call("immybot_tags", "/api/immybot/tags")
    assert response.status_code == 200, response.get_body()
    return {r["software"]: r for r in json.loads(response.get_body())["rules"]}


def put_rule(software: str, **fields) -> None:
    rules = {r["software"]: r for r in json.loads(DEMO_RULES.read_text())["rules"]}
    body = json.dumps({**rules[software], **fields}).encode()
    response = call(
        "rules", f"/api/rules/{software}", "PUT", body, {"area": "rules", "key": software}
    )
    assert response.status_code in (200, 201), response.get_body()


def sync(expected: Outcome = Outcome.SUCCEEDED) -> SyncReport:
    report = asyncio.run(run_sync())
    assert report.outcome is expected, (report.outcome, report.error, report.guard)
    return report


def writes(immy: ImmyBotSandbox) -> int:
    """Tag writes the sandbox has answered, on tenants and computers."""
    requests = immy.stats()["requests"]
    return sum(requests[name] for name in TAG_WRITES)


def approve_tag(software: str) -> dict:
    answer = handler("sync_approve")(
        func.HttpRequest("POST", "/api/sync/approve", body=b"", params={"tag": software})
    )
    assert answer.status_code == 200, answer.get_body()
    return json.loads(answer.get_body())
