"""`GET /api/changes` through the registered handler, against Azurite and the demo data.

The demo's one sync is the first publish, so every demo target `became` one: Huntress's three
(Contoso, Fabrikam, Wide World Importers) and SentinelOne's four (Contoso, Northwind, Wide World
Importers, Woodgrove Bank).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from shared.api import changes as changes_api
from shared.api.changes import parse_since
from shared.api.problems import ApiError
from shared.core.changes import Cause, Change
from shared.runtime.process import get_store
from shared.store.changes import write_changes
from tests.api.test_targets import body_of, problem_of
from tests.registry import handler

pytestmark = pytest.mark.integration


def changes(**params: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", "/api/changes", body=b"", params=params)
    return handler("changes")(request)


def listed(response: func.HttpResponse) -> list[tuple[str, str, str]]:
    assert response.status_code == 200, response.get_body()
    body = body_of(response, "ChangesResponse")
    return [(c["software"], c["client_name"], c["change"]) for c in body["changes"]]


def a_later_stop() -> Change:
    """Fabrikam's Huntress covers ending, as a publish an hour from now would log it."""
    return Change(
        at=datetime.now(UTC) + timedelta(hours=1),
        software="Huntress",
        client_id=2,
        client_name="Fabrikam, Inc.",
        immy_tenant_id=3,
        change="stopped",
        before=[
            "contract MSEC-000003 (Managed Security)",
            "contract MSEC-000010 (Managed Security)",
        ],
        after=[],
        cause=Cause(kind="approval", id="0123456789ab"),
        generation="20261206160000abcdef",
    )


def test_every_demo_target_became_one_at_the_first_sync_with_its_reasons(demo_synced):
    response = changes()
    body = body_of(response, "ChangesResponse")
    # Huntress 3, SentinelOne 4, Microsoft 365 Apps 1 (site-scoped, Woodgrove Bank).
    assert len(body["changes"]) == 8 and not body["truncated"]
    assert {(c["software"], c["change"]) for c in body["changes"]} == {
        ("Huntress", "became"),
        ("Microsoft 365 Apps", "became"),
        ("SentinelOne", "became"),
    }
    status = get_store().recent_runs(1)[0]
    assert {c["cause"]["kind"] for c in body["changes"]} == {"sync"}
    assert {c["cause"]["id"] for c in body["changes"]} == {status["run_id"]}
    contoso = next(c for c in body["changes"] if c["software"] == "SentinelOne")
    assert (contoso["client_name"], contoso["before"]) == ("Contoso Ltd", [])
    assert contoso["after"] == ["invoice -1 line 101 (SentinelOne Complete)"]
    until = datetime.fromisoformat(body["until"])
    assert datetime.fromisoformat(body["since"]) == until - timedelta(days=7)
    assert body["keep_days"] == 90 and body["software"] is None
    assert response.headers["Cache-Control"] == "private, no-cache"


def test_newest_first(demo_synced):
    write_changes(get_store(), [a_later_stop()])
    assert listed(changes())[0] == ("Huntress", "Fabrikam, Inc.", "stopped")


def test_one_rule_by_name_and_an_unknown_one(demo_synced):
    body = body_of(changes(software="  sentinelone "), "ChangesResponse")
    assert body["software"] == "SentinelOne"
    assert [c["client_name"] for c in body["changes"]] == [
        "Contoso Ltd",
        "Northwind Traders",
        "Wide World Importers",
        "Woodgrove Bank",
    ]
    missing = problem_of(changes(software="Sentinel"), 404)
    assert missing["type"].endswith("/unknown-software")
    assert missing["closest"] == ["SentinelOne"]


def test_csv_has_a_row_per_change_with_its_reasons_joined(demo_synced):
    write_changes(get_store(), [a_later_stop()])
    response = changes(format="csv", software="Huntress")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    today = datetime.now(UTC).date()
    assert response.headers["Content-Disposition"] == f'attachment; filename="changes-{today}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_body().decode())))
    assert list(rows[0]) == list(changes_api.CSV_COLUMNS)
    assert [(r["client_name"], r["change"]) for r in rows] == [
        ("Fabrikam, Inc.", "stopped"),
        ("Contoso Ltd", "became"),
        ("Fabrikam, Inc.", "became"),
        ("Wide World Importers", "became"),
    ]
    assert rows[0]["before"] == (
        "contract MSEC-000003 (Managed Security); contract MSEC-000010 (Managed Security)"
    )
    assert (rows[0]["after"], rows[0]["cause"], rows[0]["immy_tenant_id"]) == (
        "",
        "approval 0123456789ab",
        "3",
    )


def test_since_reads_from_a_moment_on(demo_synced):
    assert len(listed(changes(since=str(datetime.now(UTC).date())))) == 8
    past = (datetime.now(UTC) - timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert len(listed(changes(since=past))) == 8
    assert listed(changes(since=(datetime.now(UTC) + timedelta(minutes=5)).isoformat())) == []


def test_since_is_bounded_by_the_days_the_log_keeps_not_refused(demo_synced):
    body = body_of(changes(since="0001-01-01T00:00:00+05:00"), "ChangesResponse")
    until = datetime.fromisoformat(body["until"])
    assert datetime.fromisoformat(body["since"]) == until - timedelta(days=90)
    assert len(body["changes"]) == 8
    future = body_of(changes(since="9999-12-31T23:59:59-05:00"), "ChangesResponse")
    assert future["changes"] == []


def test_an_answer_past_its_cap_is_the_newest_and_says_it_is_truncated(demo_synced, monkeypatch):
    monkeypatch.setattr(changes_api, "MAX_CHANGES", 3)
    write_changes(get_store(), [a_later_stop()])
    body = body_of(changes(), "ChangesResponse")
    assert body["truncated"] is True and len(body["changes"]) == 3
    assert body["changes"][0]["change"] == "stopped"
    assert body_of(changes(software="Huntress"), "ChangesResponse")["truncated"] is True


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
        ("2026-12-01T08:30:00Z", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01t08:30:00z", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01T09:30:00+01:00", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01T03:30:00-05:00", datetime(2026, 12, 1, 8, 30, tzinfo=UTC)),
        ("2026-12-01T08:30:00.1234567Z", datetime(2026, 12, 1, 8, 30, 0, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_since_is_a_day_or_an_rfc_3339_date_time(raw, expected):
    assert parse_since(raw) == expected


@pytest.mark.parametrize(
    "params",
    [
        {"since": ""},
        {"since": "yesterday"},
        {"since": "2026-13-01"},
        {"since": "2026-02-30"},
        {"since": "2026-12-01T08:30"},  # no offset: which 08:30?
        {"since": "2026-12-01T08:30:00"},
        {"since": "2026-12-01T24:00:00Z"},
        {"since": "2026-12-01T08:30:61Z"},
        {"since": "2026-12-01T08:30:00+24:00"},
        {"since": "2026-12-01 08:30:00Z"},
        {"since": "20261201"},
        {
            "since": "\u0662\u0660\u0662\u0666-12-01"
        },  # Arabic-Indic digits: \d reads them, the API must not
        {"format": "xml"},
        {"software": ""},
        {"software": "x\x00"},
    ],
)
def test_bad_parameters_are_400_problems(demo_synced, params):
    problem = problem_of(changes(**params), 400)
    assert problem["type"].endswith("/bad-query")


def test_bad_since_names_what_it_may_be():
    with pytest.raises(ApiError, match=r"a day .* or an RFC 3339 date-time"):
        parse_since("last week")


def test_before_the_first_sync_the_log_is_empty_and_a_rule_is_not_known_yet(
    configure, halo_sandbox
):
    from sandbox.halo_data import demo_data

    configure(halo_sandbox(demo_data(datetime.now(UTC).date())).url)
    assert listed(changes()) == []
    response = changes(software="Huntress")
    assert problem_of(response, 503)["type"].endswith("/no-snapshot")


def test_a_rule_edit_logs_who_it_moved_with_the_rule_as_cause(demo_synced):
    from shared.api.rules import delete_rule, patch_rule

    today = datetime.now(UTC).date()
    patch_rule(get_store(), "SentinelOne", b'{"grace_days": 3}', "application/json", today)
    assert len(listed(changes())) == 8  # who is a target did not change: nothing logged
    delete_rule(get_store(), "Huntress", today)
    # The rule is gone, so the log is read whole (a name no rule has is a 404).
    body = body_of(changes(), "ChangesResponse")
    stopped = [c for c in body["changes"] if c["change"] == "stopped"]
    assert {c["software"] for c in stopped} == {"Huntress"}
    assert [c["client_name"] for c in stopped] == [
        "Contoso Ltd",
        "Fabrikam, Inc.",
        "Wide World Importers",
    ]
    assert {c["cause"]["kind"] for c in stopped} == {"rule"}
    assert len({c["cause"]["id"] for c in stopped}) == 1
    assert all(c["before"] and c["after"] == [] for c in stopped)
