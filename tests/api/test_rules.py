"""Editing one rule: a PUT replaces it and says what it dropped or changed; a PATCH (JSON merge
patch) changes only the members it names, validated as a PUT is."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from shared.api.problems import PROBLEM_JSON
from tests.registry import handler

pytestmark = pytest.mark.integration
MERGE_PATCH = "application/merge-patch+json"
SENTINELONE_ITEMS = [
    {"id": None, "code": "S1-COMPLETE", "name": None},
    {"id": None, "code": None, "name": "SentinelOne Complete"},
]


def rules(method: str, software: str | None, document=None, content_type: str | None = None):
    headers = {"Content-Type": content_type} if content_type else {}
    body = b"" if document is None else json.dumps(document).encode()
    request = func.HttpRequest(
        method,
        f"http://localhost/api/rules/{software or ''}",
        body=body,
        headers=headers,
        route_params={"area": "rules", **({"key": software} if software else {})},
    )
    return handler("rules")(request)


def answer(response: func.HttpResponse, status: int = 200) -> dict:
    assert response.status_code == status, response.get_body()[:500]
    return json.loads(response.get_body())


def test_a_put_replaces_the_rule_and_says_what_it_dropped_or_changed(demo_synced):
    before = answer(rules("GET", "SentinelOne"))["rule"]
    assert before["detect"] == ["Sentinel Agent"] and before["items"] == SENTINELONE_ITEMS
    put = answer(
        rules("PUT", "SentinelOne", {"items": [{"code": "S1-COMPLETE"}], "offboard_days": 14})
    )
    assert put["rule"]["detect"] == [] and put["rule"]["offboard_days"] == 14
    assert put["replaced"] == [
        {"field": "items", "change": "changed", "before": SENTINELONE_ITEMS},
        {"field": "detect", "change": "dropped", "before": ["Sentinel Agent"]},
        {"field": "offboard_days", "change": "changed", "before": None},
    ]


def test_a_created_rule_replaced_nothing(demo_synced):
    created = answer(rules("PUT", "Defender", {"contract_types": ["Managed Security"]}), 201)
    assert created["replaced"] == []


def test_a_patch_changes_only_the_members_it_names(demo_synced):
    patched = answer(rules("PATCH", "SentinelOne", {"offboard_days": 14}, MERGE_PATCH))
    assert patched["replaced"] == [{"field": "offboard_days", "change": "changed", "before": None}]
    rule = answer(rules("GET", "SentinelOne"))["rule"]
    assert rule["offboard_days"] == 14
    assert rule["detect"] == ["Sentinel Agent"] and rule["items"] == SENTINELONE_ITEMS
    # The answer counts the rule's targets in the current snapshot, as a PUT's does.
    assert patched["targets"] is not None


def test_null_in_a_patch_takes_a_member_back_to_its_default(demo_synced):
    patched = answer(rules("PATCH", "SentinelOne", {"detect": None}, "application/json"))
    assert patched["rule"]["detect"] == [] and patched["rule"]["items"] == SENTINELONE_ITEMS
    assert patched["replaced"] == [
        {"field": "detect", "change": "dropped", "before": ["Sentinel Agent"]}
    ]


@pytest.mark.parametrize(
    ("patch", "status", "said"),
    [
        # Valid members, but the rule they make names nothing that entitles: RFC 5789's 422.
        ({"items": None}, 422, "at least one contract type or item"),
        ({"grace_days": "5"}, 400, "grace_days"),  # strict types, as a PUT
        ({"grace_days": 400}, 400, "grace_days"),
        ({"surprise": 1}, 400, "surprise"),
        ({"software": "Sentinel\u202eOne"}, 400, "U+202E"),
        ({"software": "Huntress"}, 409, "software-mismatch"),
    ],
)
def test_a_patch_is_validated_as_a_put_is(demo_synced, patch, status, said):
    before = answer(rules("GET", "SentinelOne"))["rule"]
    response = rules("PATCH", "SentinelOne", patch, MERGE_PATCH)
    assert response.status_code == status and response.mimetype == PROBLEM_JSON
    assert said in response.get_body().decode()
    assert answer(rules("GET", "SentinelOne"))["rule"] == before


def test_patching_a_rule_that_does_not_exist_is_404(demo_synced):
    response = rules("PATCH", "Defender", {"grace_days": 3}, MERGE_PATCH)
    problem = answer(response, 404)
    assert problem["known"] == ["Huntress", "Microsoft 365 Apps", "SentinelOne"]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/json-patch+json"])
def test_a_patch_is_a_merge_patch_or_json_object_only(demo_synced, content_type):
    response = rules("PATCH", "SentinelOne", {"grace_days": 3}, content_type)
    assert response.status_code == 415 and response.mimetype == PROBLEM_JSON
    assert response.headers["Accept-Patch"] == f"{MERGE_PATCH}, application/json"


def test_the_rule_set_takes_no_patch(demo_synced):
    response = rules("PATCH", None, {"rules": []}, MERGE_PATCH)
    assert response.status_code == 405 and response.headers["Allow"] == "GET, PUT"


def test_a_rule_edit_keeps_the_snapshot_so_the_next_edit_reads_no_records(demo_synced, monkeypatch):
    from shared.api import current

    reads: list[str] = []
    real = current.read_snapshot

    def counted(store, generation):
        reads.append(generation)
        return real(store, generation)

    monkeypatch.setattr(current, "read_snapshot", counted)
    answer(rules("PUT", "Defender", {"contract_types": ["Managed Security"]}), 201)
    answer(rules("PATCH", "Defender", {"offboard_days": 14}, MERGE_PATCH))
    answer(rules("PUT", "Defender", {"contract_types": ["Managed Security"]}))
    # The first edit read the records; a rule edit changes none of them, so the next two did not.
    assert len(reads) == 1
    assert answer(rules("GET", "Defender"))["targets"] == 3  # and they resolved from the same


@pytest.mark.parametrize("method", ["PUT", "PATCH", "PUT /rules"])
def test_a_rule_edit_reads_the_pointer_and_manifest_once_and_answers_what_it_wrote(
    demo_synced, monkeypatch, method
):
    from shared.api import rules as rule_admin
    from shared.store.state import SyncStateStore

    reads: list[str] = []
    manifest, current = rule_admin.read_manifest, SyncStateStore.current

    def read_manifest(store, generation):
        reads.append("manifest")
        return manifest(store, generation)

    def pointer(self):
        reads.append("pointer")
        return current(self)

    monkeypatch.setattr(rule_admin, "read_manifest", read_manifest)
    monkeypatch.setattr(SyncStateStore, "current", pointer)
    if method == "PUT /rules":
        exported = json.loads(rules("GET", None).get_body())
        assert reads == []  # a listing that asks for no targets reads neither
        edited = [
            {**r, "offboard_days": 9} if r["software"] == "Huntress" else r
            for r in exported["rules"]
        ]
        view = next(
            r
            for r in answer(rules("PUT", None, {"rules": edited}))["rules"]
            if r["rule"]["software"] == "Huntress"
        )
    elif method == "PATCH":
        view = answer(rules("PATCH", "Huntress", {"offboard_days": 9}, MERGE_PATCH))
    else:
        body = answer(rules("GET", "Huntress"))["rule"]
        reads.clear()
        view = answer(rules("PUT", "Huntress", {**body, "offboard_days": 9}))
    # Once to apply the edit, and the answer shows what that wrote. An import's reference check
    # reads the pointer too (what ids the current data holds), before anything is written.
    assert reads == ["pointer", *(["pointer"] if method == "PUT /rules" else []), "manifest"]
    # The answer shows the edit's own manifest: the targets the re-resolved rule has now.
    assert view["rule"]["offboard_days"] == 9
    assert view["targets"] == answer(rules("GET", "Huntress"))["targets"] == 3
