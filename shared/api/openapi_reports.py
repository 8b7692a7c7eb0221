"""The report routes of the HTTP API as typed specs (shared.api.openapi_routes lists every route):
billed, targeted and installed, what ends next, and what changed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field

from shared.api.calendar import DEFAULT_DAYS, MAX_DAYS, CalendarResponse
from shared.api.changes import MAX_CHANGES, SINCE_HELP, ChangesResponse
from shared.api.openapi_spec import TEXT, Operation, Param, Response, Route
from shared.api.params import Lookup
from shared.api.reconciliation import ReconciliationResponse

RECONCILIATION = Route(
    "/reconciliation",
    (
        Operation(
            "get",
            "getReconciliation",
            summary="Per client: billed quantity, targeted computers and computers with the "
            "software installed, their differences and the money at stake",
            description="Every number is as of the current sync (ImmyBot's inventory is read by "
            "the sync, never by this call). at_stake = installed_minus_quantity x unit_price: "
            "positive, installs not billed; negative, billed seats with no install. The CSV has "
            "one column per JSON row field, numbers only in number columns (empty: not known; "
            "quantity_status and installed_unknown say why).",
            params=(
                Param("software", "query", Lookup, "A rule's software name.", required=True),
                Param("format", "query", Literal["json", "csv"]),
            ),
            answers={
                200: Response(
                    "The report (JSON, or CSV with format=csv)",
                    {"application/json": ReconciliationResponse, "text/csv": TEXT},
                )
            },
            problems=(400, 404, 503),
        ),
    ),
)


CALENDAR = Route(
    "/calendar",
    (
        Operation(
            "get",
            "getCalendar",
            summary="Coverage that ends in the coming days, per rule and client, and why",
            description="From the current snapshot, the rules of coverage run forward in time: "
            "for each target today, the first day it stops being one if nothing changes in "
            "HaloPSA (contract end + grace days, line end, invoice or schedule end; a client "
            "covered twice ends when its last cover does), soonest first.",
            params=(
                Param(
                    "days",
                    "query",
                    Annotated[int, Field(ge=1, le=MAX_DAYS)],
                    f"How many days ahead of today (UTC) to look; default {DEFAULT_DAYS}.",
                ),
                Param("software", "query", Lookup, "Only this rule's software."),
                Param("format", "query", Literal["json", "csv"]),
            ),
            answers={
                200: Response(
                    "The calendar (JSON, or CSV with format=csv)",
                    {"application/json": CalendarResponse, "text/csv": TEXT},
                )
            },
            problems=(400, 404, 503),
        ),
    ),
)


CHANGES = Route(
    "/changes",
    (
        Operation(
            "get",
            "getChanges",
            summary="Who became or stopped being a target at each publish, why, and the cause",
            description="The change log, newest first: per rule and client, `became`, `stopped` "
            "or `changed` (still a target, other contracts or invoice lines), the reasons "
            "before and after, and what published it (a sync run, an approval of a held run, "
            f"an event refresh). At most {MAX_CHANGES} changes; `truncated` says when more "
            "matched.",
            params=(
                Param("software", "query", Lookup, "Only this rule's software."),
                Param(
                    "since",
                    "query",
                    datetime | date,
                    f"From when: {SINCE_HELP}; default 7 days ago. Earlier than the log keeps "
                    "(CHANGES_KEEP_DAYS) reads from the oldest day kept; later than now finds "
                    "nothing.",
                ),
                Param("format", "query", Literal["json", "csv"]),
            ),
            answers={
                200: Response(
                    "The changes (JSON, or CSV with format=csv)",
                    {"application/json": ChangesResponse, "text/csv": TEXT},
                )
            },
            problems=(400, 404, 503),
        ),
    ),
)
