"""What changed: `GET /api/changes[?software=NAME][&since=ISO][&format=csv]`.

The change log (shared.sync.changes), newest first: at each publish, per rule and client, who
became or stopped being a target (or stayed one with other covers), the reasons before and after,
and what caused it. `since` is a day (`2026-12-01`: from midnight UTC) or an RFC 3339 date-time
with its offset (`2026-12-01T08:00:00Z`, `2026-12-01T09:00:00+01:00`); unset, 7 days before now.
It is bounded rather than refused: before the log's window (CHANGES_KEEP_DAYS) it reads from the
window's start, since the log keeps nothing older, and after now it finds nothing. An answer
holds at most MAX_CHANGES changes, the newest (`truncated` says when more matched).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.api.csv_out import csv_reply, csv_text
from shared.api.current import current_state, rule_in
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.changes import Change
from shared.core.rules import normalise
from shared.store.changes import iter_changes
from shared.store.repository import Store

DEFAULT_DAYS = 7
MAX_CHANGES = 5000
# A day, or a date-time with its offset (RFC 3339 allows lower-case t and z, and a leap second).
_SINCE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2})))?",
    re.ASCII,
)
SINCE_HELP = "a day (2026-12-01) or an RFC 3339 date-time with its offset (2026-12-01T08:00:00Z)"


@dataclass(frozen=True, slots=True)
class ChangesQuery:
    """What a caller asked the change log for, `since` already bounded."""

    since: datetime
    until: datetime
    keep_days: int
    software: str | None = None
    output: Literal["json", "csv"] = "json"


class ChangesResponse(BaseModel):
    """`GET /api/changes`: the change log from `since` to now, newest first."""

    model_config = ConfigDict(frozen=True)

    since: datetime = Field(
        description="The answer's first moment (UTC): the one asked for, 7 days ago by default, "
        "never before the log's window."
    )
    until: datetime = Field(description="When the answer was made (UTC).")
    keep_days: int = Field(description="How many days the log keeps (CHANGES_KEEP_DAYS).")
    software: str | None = Field(description="The one rule asked for; null for every rule.")
    truncated: bool = Field(
        description=f"More than {MAX_CHANGES} changes matched: only the newest are listed; ask "
        "for one software or a later since."
    )
    changes: list[Change]


def changes_query(params: Mapping[str, str], now: datetime, keep_days: int) -> ChangesQuery:
    """`since`, `software` and `format`; else a 400 saying which."""
    raw = params.get("since")
    since = now - timedelta(days=DEFAULT_DAYS) if raw is None else parse_since(raw)
    since = max(since, now - timedelta(days=keep_days))
    software = params.get("software")
    output = params.get("format", "json")
    if output not in ("json", "csv"):
        raise ApiError(problem(400, "bad-query", "format may be json or csv"))
    return ChangesQuery(
        since,
        now,
        keep_days,
        None if software is None else lookup_value("software", software),
        "csv" if output == "csv" else "json",
    )


def parse_since(raw: str) -> datetime:
    """`since` as a UTC datetime; a 400 unless it is a real day or RFC 3339 date-time."""
    found = _SINCE.fullmatch(raw)
    try:
        if found is None:
            raise ValueError(raw)
        local = _moment(*found.groups())
    except ValueError:
        raise ApiError(problem(400, "bad-query", f"since must be {SINCE_HELP}")) from None
    try:
        return local.astimezone(UTC)
    except OverflowError:
        # Year 1 east of UTC or year 9999 west of it: before or after anything the log holds.
        return (datetime.min if local.year == 1 else datetime.max).replace(tzinfo=UTC)


def _moment(year: str, month: str, day: str, *clock: str | None) -> datetime:
    """The moment `_SINCE`'s groups name; ValueError for a day or time that does not exist."""
    hour, minute, second, fraction, _zulu, sign, off_hours, off_minutes = clock
    if hour is None or minute is None or second is None:
        return datetime(int(year), int(month), int(day), tzinfo=UTC)
    hours, minutes = int(off_hours or 0), int(off_minutes or 0)
    if hours > 23 or minutes > 59:
        raise ValueError("an offset is at most 23:59")
    offset = timedelta(hours=hours, minutes=minutes)
    zone = timezone(-offset if sign == "-" else offset)
    # A leap second (:60) reads as the second before it: datetime has none.
    seconds = 59 if second == "60" else int(second)
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), seconds, micros, tzinfo=zone
    )


def answer_changes(store: Store, query: ChangesQuery) -> ChangesResponse:
    """The changes of one rule (a current rule, else 404), or of every rule, newest first."""
    software = key = None
    if query.software is not None:
        software = rule_in(current_state(store).manifest, query.software).software
        key = normalise(software)
    found: list[Change] = []
    truncated = False
    for change in iter_changes(store, query.since, rule=key):
        if len(found) == MAX_CHANGES:
            truncated = True
            break
        found.append(change)
    return ChangesResponse(
        since=query.since,
        until=query.until,
        keep_days=query.keep_days,
        software=software,
        truncated=truncated,
        changes=found,
    )


CSV_COLUMNS = (
    "at", "software", "client_id", "client_name", "immy_tenant_id", "change", "before", "after",
    "cause", "generation",
)  # fmt: skip


def changes_reply(answer: ChangesResponse, output: Literal["json", "csv"]) -> Reply:
    """The changes as JSON, or as a CSV attachment (one row per change, reasons joined)."""
    if output == "json":
        return json_reply(answer, headers={"Cache-Control": "private, no-cache"})
    rows = [
        change.model_dump(mode="json")
        | {
            "before": "; ".join(change.before),
            "after": "; ".join(change.after),
            "cause": change.cause.describe(),
        }
        for change in answer.changes
    ]
    return csv_reply(csv_text(CSV_COLUMNS, rows), f"changes-{answer.until.date()}")
