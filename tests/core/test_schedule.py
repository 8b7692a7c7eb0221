"""The sync schedule's longest gap, read from its six-field NCRONTAB expression."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.core.schedule import longest_gap


@pytest.mark.parametrize(
    ("schedule", "gap"),
    [
        ("0 */5 * * * *", timedelta(minutes=5)),
        ("0 0 * * * *", timedelta(hours=1)),
        ("0 0 */2 * * *", timedelta(hours=2)),
        ("0 0 0 * * *", timedelta(days=1)),
    ],
)
def test_regular_intervals(schedule, gap):
    assert longest_gap(schedule) == gap


def test_lists_and_ranges_find_the_longest_gap_not_the_shortest():
    assert longest_gap("0 0 8,17 * * *") == timedelta(hours=15)  # 17:00 to 08:00
    assert longest_gap("0 0 9-17 * * *") == timedelta(hours=16)  # 17:00 to 09:00
    assert longest_gap("0 0 9 * * 1-5") == timedelta(days=3)  # Friday to Monday


def test_a_step_applies_to_a_range_and_runs_from_a_single_start():
    assert longest_gap("0 10-20/5 * * * *") == timedelta(minutes=50)  # :20 to the next :10
    assert longest_gap("0 0 6/12 * * *") == timedelta(hours=12)  # 06:00 and 18:00


def test_seconds_are_part_of_the_gap():
    assert longest_gap("*/30 * * * * *") == timedelta(seconds=30)
    assert longest_gap("0,30 0 * * * *") == timedelta(minutes=59, seconds=30)


def test_a_schedule_that_never_or_barely_fires_counts_as_weekly():
    assert longest_gap("0 0 0 31 2 *") == timedelta(days=7)  # 31 February
    assert longest_gap("0 0 12 * * 0") == timedelta(days=7)  # Sundays at noon


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 */5 * * *", "six fields"),
        ("0 0 */5 * * * *", "six fields"),
        ("", "six fields"),
        ("0 60 * * * *", "outside 0-59"),
        ("0 0 24 * * *", "outside 0-23"),
        ("0 0 0 0 * *", "outside 1-31"),
        ("0 0 0 * 13 *", "outside 1-12"),
        ("0 0 0 * * 7", "outside 0-6"),
        ("0 20-10 * * * *", "outside 0-59"),
        ("0 */0 * * * *", "bad step"),
        ("0 */-1 * * * *", "bad step"),
        ("0 x * * * *", "invalid literal"),
        ("0 1,,2 * * * *", "invalid literal"),
    ],
)
def test_bad_expressions_raise_value_error(schedule, message):
    with pytest.raises(ValueError, match=message):
        longest_gap(schedule)
