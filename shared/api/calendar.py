"""What ends next: `GET /api/calendar?days=30[&software=NAME][&format=csv]`.

Per rule and client, the first day a client stops being a target if nothing changes in HaloPSA,
and why, from the current snapshot (shared.core.calendar runs the same resolution forward in time).
The window starts today (UTC, the caller's clock), not on the snapshot's day: what matters is
what ends from now on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.csv_out import csv_reply, csv_text
from shared.api.current import rule_in, snapshot_of, with_fresh_state
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.calendar import CoverageEnd, coverage_ends
from shared.store.read_cache import Current
from shared.store.repository import Store

DEFAULT_DAYS = 30
MAX_DAYS = 366
_DAYS = re.compile(r"[0-9]{1,3}", re.ASCII)


@dataclass(frozen=True, slots=True)
class CalendarQuery:
    """What a caller asked the calendar for."""

    days: int = DEFAULT_DAYS
    software: str | None = None
    output: Literal["json", "csv"] = "json"


class CalendarResponse(BaseModel):
    """`GET /api/calendar`: coverage that ends inside the window, soonest first."""

    model_config = ConfigDict(frozen=True)

    generation: str
    synced_at: datetime
    today: date = Field(description="The window's first day (UTC): ends are counted from it.")
    until: date = Field(description="The window's last day: today + days.")
    days: int
    software: str | None = Field(description="The one rule asked for; null for every rule.")
    ends: list[CoverageEnd]


def calendar_query(params: Mapping[str, str]) -> CalendarQuery:
    """`days` (1 to 366, default 30), `software` and `format`; else a 400 saying which."""
    raw_days = params.get("days")
    days = DEFAULT_DAYS
    if raw_days is not None:
        days = int(raw_days) if _DAYS.fullmatch(raw_days) else 0
        if not 1 <= days <= MAX_DAYS:
            raise ApiError(
                problem(400, "bad-query", f"days must be a whole number from 1 to {MAX_DAYS}")
            )
    software = params.get("software")
    output = params.get("format", "json")
    if output not in ("json", "csv"):
        raise ApiError(problem(400, "bad-query", "format may be json or csv"))
    return CalendarQuery(
        days,
        None if software is None else lookup_value("software", software),
        "csv" if output == "csv" else "json",
    )


def answer_calendar(store: Store, query: CalendarQuery, today: date) -> CalendarResponse:
    """The coverage ends of one rule, or of every rule, from `today` to `today + days`."""

    def answer(current: Current) -> CalendarResponse:
        manifest = current.manifest
        entries = (
            [rule_in(manifest, query.software)]
            if query.software is not None
            else sorted(manifest.rules.values(), key=lambda e: e.software.casefold())
        )
        snapshot = snapshot_of(store, current.pointer.generation, current.manifest_etag)
        until = today + timedelta(days=query.days)
        return CalendarResponse(
            generation=current.pointer.generation,
            synced_at=current.pointer.synced_at,
            today=today,
            until=until,
            days=query.days,
            software=entries[0].software if query.software is not None else None,
            ends=coverage_ends(snapshot, [e.rule for e in entries], today, until),
        )

    return with_fresh_state(store, answer)


CSV_COLUMNS = (
    "ends_on", "days", "software", "client_id", "client_name", "last_day", "resumes_on", "why",
)  # fmt: skip


def calendar_reply(answer: CalendarResponse, output: Literal["json", "csv"]) -> Reply:
    """The calendar as JSON, or as a CSV attachment (one row per rule and client)."""
    if output == "json":
        return json_reply(answer, headers={"Cache-Control": "private, no-cache"})
    rows = [
        end.model_dump(mode="json") | {"why": "; ".join(e.describe() for e in end.why)}
        for end in answer.ends
    ]
    return csv_reply(csv_text(CSV_COLUMNS, rows), f"calendar-{answer.today}")
