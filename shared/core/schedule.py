"""Just enough NCRONTAB to know how often the sync runs, for freshness warnings.

The Functions host owns the real schedule; this reads the same `SYNC_SCHEDULE` expression
(`second minute hour day month weekday`) and finds the longest gap between two firings in a week.
Supported per field: `*`, `n`, `a-b`, `a,b`, and `/step` on any of them.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step <= 0:
            raise ValueError(f"bad step in {text!r}")
        if body == "*":
            first, last = low, high
        elif "-" in body:
            first, last = (int(x) for x in body.split("-", 1))
        else:
            first = int(body)
            last = high if step_text else first
        if not (low <= first <= last <= high):
            raise ValueError(f"{text!r} is outside {low}-{high}")
        values.update(range(first, last + 1, step))
    return frozenset(values)


def longest_gap(schedule: str) -> timedelta:
    """The longest time between two consecutive firings of a six-field NCRONTAB schedule."""
    fields = schedule.split()
    if len(fields) != 6:
        raise ValueError("an NCRONTAB schedule has six fields")
    seconds, minutes, hours, days, months, weekdays = (
        _field(text, low, high) for text, (low, high) in zip(fields, _RANGES, strict=True)
    )
    # Minute resolution over two weeks is enough for a freshness threshold.
    start = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    firings: list[datetime] = []
    for minute in range(14 * 24 * 60):
        at = start + timedelta(minutes=minute)
        if (
            at.minute in minutes
            and at.hour in hours
            and at.day in days
            and at.month in months
            and (at.weekday() + 1) % 7 in weekdays
        ):
            firings.extend(at + timedelta(seconds=s) for s in sorted(seconds))
    if len(firings) < 2:
        return timedelta(days=7)
    return max(b - a for a, b in itertools.pairwise(firings))
