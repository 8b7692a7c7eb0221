"""`GET /api/calendar` through the registered handler, against Azurite and the demo data.

The demo's Fabrikam has a Managed Security contract ending in 20 days, and Huntress allows 7
grace days: Fabrikam stops being a Huntress target in 28 days. Contoso's contract ends in 165
days (173 with the grace); every other demo cover is open.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import azure.functions as func
import pytest

from tests.api.test_targets import body_of, problem_of
from tests.registry import handler

pytestmark = pytest.mark.integration


def today():
    return datetime.now(UTC).date()


def calendar(**params: str) -> func.HttpResponse:
    request = func.HttpRequest("GET", "/api/calendar", body=b"", params=params)
    return handler("calendar")(request)


def ends(response: func.HttpResponse) -> list[tuple[str, str, int]]:
    assert response.status_code == 200, response.get_body()
    body = body_of(response, "CalendarResponse")
    return [(e["software"], e["client_name"], e["days"]) for e in body["ends"]]


def test_the_next_30_days_by_default_with_the_end_and_its_reason(demo_synced):
    response = calendar()
    body = body_of(response, "CalendarResponse")
    assert (body["days"], body["today"]) == (30, str(today()))
    assert body["until"] == str(today() + timedelta(days=30))
    [fabrikam] = body["ends"]
    assert (fabrikam["software"], fabrikam["client_id"], fabrikam["client_name"]) == (
        "Huntress",
        2,
        "Fabrikam, Inc.",
    )
    assert fabrikam["ends_on"] == str(today() + timedelta(days=28))
    assert fabrikam["last_day"] == str(today() + timedelta(days=27))
    assert (fabrikam["days"], fabrikam["resumes_on"]) == (28, None)
    [why] = fabrikam["why"]
    assert why["ends_by"] == "contract_end" and why["contract_ref"] == "MSEC-000003"
    assert (why["end_date"], why["grace_days"]) == (str(today() + timedelta(days=20)), 7)
    assert response.headers["Cache-Control"] == "private, no-cache"


def test_the_window_is_days_long_from_today(demo_synced):
    assert ends(calendar(days="27")) == []
    assert ends(calendar(days="28")) == [("Huntress", "Fabrikam, Inc.", 28)]
    assert ends(calendar(days="366")) == [
        ("Huntress", "Fabrikam, Inc.", 28),
        ("Huntress", "Contoso Ltd", 173),
    ]


def test_one_rule_by_name_and_an_unknown_one(demo_synced):
    body = body_of(calendar(software="  huntress ", days="366"), "CalendarResponse")
    assert body["software"] == "Huntress" and len(body["ends"]) == 2
    assert ends(calendar(software="SentinelOne", days="366")) == []
    missing = problem_of(calendar(software="Sentinel"), 404)
    assert missing["closest"] == ["SentinelOne"]


def test_csv_has_a_row_per_rule_and_client_with_its_reason(demo_synced):
    response = calendar(days="366", format="csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    disposition = response.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="calendar-{today()}.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_body().decode())))
    assert [(r["software"], r["client_name"], r["days"]) for r in rows] == [
        ("Huntress", "Fabrikam, Inc.", "28"),
        ("Huntress", "Contoso Ltd", "173"),
    ]
    end = today() + timedelta(days=20)
    assert rows[0]["why"] == f"contract MSEC-000003 ends {end} + 7 grace days"
    assert rows[0]["resumes_on"] == ""


@pytest.mark.parametrize(
    "params",
    [
        {"days": "0"},
        {"days": "367"},
        {"days": "-1"},
        {"days": "1.5"},
        {"days": " 5"},
        {"days": ""},
        {"days": "1000"},
        {"days": "٣"},  # an Arabic-Indic digit: int() would read it, the API must not
        {"format": "xml"},
        {"software": ""},
        {"software": "x\x00"},
    ],
)
def test_bad_parameters_are_400_problems(demo_synced, params):
    problem = problem_of(calendar(**params), 400)
    assert problem["type"].endswith("/bad-query")


def test_before_the_first_sync_it_is_503(configure, halo_sandbox):
    from sandbox.halo_data import demo_data

    configure(halo_sandbox(demo_data(today())).url)
    response = calendar()
    assert problem_of(response, 503)["type"].endswith("/no-snapshot")
    assert response.headers["Retry-After"] == "60"
