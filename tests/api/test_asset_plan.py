"""`GET /api/assets/plan` while the current generation has no plan yet: the last plan stored,
marked `current: false`; a 404 only when no stored generation has one. Azurite and the demo."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from sandbox.demo import DEMO_SETTINGS
from shared.core.asset_plan import AssetCreate, ClientAssetPlan
from shared.runtime.process import get_settings, get_store
from shared.store.repository import new_generation
from shared.sync import phases
from shared.sync.asset_store import AssetRunSummary, store_plan
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.registry import handler

pytestmark = pytest.mark.integration

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def plan_http(**params: str) -> tuple[int, dict]:
    request = func.HttpRequest("GET", "/api/assets/plan", body=b"", params=params)
    response = handler("assets_plan")(request)
    return response.status_code, json.loads(response.get_body())


def stored_generation(at: datetime) -> str:
    """A generation table of its own (a stand-in for one retention keeps), with no plan."""
    generation = new_generation(at)
    get_store().write_generation(generation, {"meta": [{"RowKey": "stand-in"}]})
    return generation


def store_a_plan(generation: str, minutes: int, computer_id: int) -> None:
    """A plan computed `minutes` after AT, stored with `generation`: Contoso (client 1, tenant 2)
    creates one asset, for `computer_id`."""
    summary = AssetRunSummary(
        mode="plan",
        outcome="planned",
        run_id=f"run{minutes}",
        generation=generation,
        computed_at=AT + timedelta(minutes=minutes),
    )
    create = AssetCreate(computer_id=computer_id, name="PC", site_id=1, site_from="client_default")
    plan = ClientAssetPlan(client_id=1, tenant_id=2, creates=[create])
    store_plan(get_store(), generation, summary, [plan])


def current_generation() -> str:
    pointer = get_store().current()
    assert pointer is not None
    return pointer.generation


def test_without_a_plan_of_the_current_generation_the_last_one_stored_answers(demo_synced):
    current = current_generation()  # the demo's sync ran with ASSET_SYNC off: no plan
    older, oldest = stored_generation(AT), stored_generation(AT - timedelta(days=1))
    store_a_plan(oldest, minutes=30, computer_id=7)  # computed last, so the one to answer
    store_a_plan(older, minutes=10, computer_id=8)
    status, body = plan_http()
    assert status == 200, body
    assert body["current"] is False
    assert (body["summary"]["generation"], body["summary"]["run_id"]) == (oldest, "run30")
    (contoso,) = body["clients"]
    assert [c["computer_id"] for c in contoso["creates"]] == [7]
    # Names are still those of the snapshot that serves now.
    assert (contoso["client_id"], contoso["client_name"]) == (1, "Contoso Ltd")
    assert plan_http(client_id="1")[1]["clients"] == body["clients"]
    status, other = plan_http(client_id="2")
    assert (status, other["current"], other["clients"]) == (200, False, [])

    store_a_plan(current, minutes=0, computer_id=9)  # the current one's, however old, wins
    status, body = plan_http()
    assert status == 200 and body["current"] is True
    assert body["summary"]["generation"] == current
    assert [c["computer_id"] for c in body["clients"][0]["creates"]] == [9]


def test_no_plan_in_any_stored_generation_is_a_404(demo_synced):
    stored_generation(AT)
    status, body = plan_http()
    assert status == 404
    assert body["type"].endswith("/no-asset-plan")
    assert body["detail"] == "no asset plan yet: set ASSET_SYNC and let a sync run"


def test_between_the_swap_and_the_asset_run_the_previous_plan_answers(demo_synced, monkeypatch):
    for key, value in DEMO_SETTINGS.items():
        if key.startswith("ASSET_"):
            monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    first = asyncio.run(run_sync())  # no ImmyBot here: a `skipped` plan, stored all the same
    assert first.outcome is Outcome.SUCCEEDED and first.assets is not None, first.error
    seen: list[tuple[str, int, dict]] = []
    run_assets = phases.run_assets

    async def answer_first(*args, **kwargs):
        # The pointer already names the new generation; its asset run has not stored a plan.
        seen.append((current_generation(), *plan_http()))
        return await run_assets(*args, **kwargs)

    monkeypatch.setattr(phases, "run_assets", answer_first)
    second = asyncio.run(run_sync())
    assert second.outcome is Outcome.SUCCEEDED, second.error
    ((serving, status, body),) = seen
    assert serving == second.generation != first.generation
    assert status == 200, body
    assert body["current"] is False
    assert (body["summary"]["generation"], body["summary"]["run_id"]) == (
        first.generation,
        first.run_id,
    )
    status, body = plan_http()
    assert (status, body["current"], body["summary"]["run_id"]) == (200, True, second.run_id)


def test_the_openapi_document_says_whether_the_plan_is_the_current_ones():
    from shared.api.openapi import openapi_document

    document = openapi_document()
    answer = document["components"]["schemas"]["AssetPlanAnswer"]
    assert answer["properties"]["current"]["type"] == "boolean"
    assert "summary.generation" in answer["properties"]["current"]["description"]
    assert {"current", "summary", "clients"} <= set(answer["required"])
    responses = document["paths"]["/assets/plan"]["get"]["responses"]
    assert "current: false" in responses["200"]["description"]
