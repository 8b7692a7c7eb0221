"""Installed from ImmyBot's bulk inventory: what is searched, what is kept, how it is counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.installed import (
    InventoryState,
    as_stored,
    by_tenant,
    installed_in,
    search_plan,
    search_text,
    with_software,
)
from shared.core.rules import ItemMatch, Rule
from shared.records.immybot import ImmyComputer, InventoryRow

AS_OF = datetime(2026, 12, 2, tzinfo=UTC)


def rule(software: str, *detect: str) -> Rule:
    return Rule(software=software, items=[ItemMatch(id=1)], detect=list(detect))


def row(computer: int, name: str, version: str = "1.0", tenant: int = 2) -> InventoryRow:
    return InventoryRow.model_validate(
        {
            "computerId": computer,
            "tenantId": tenant,
            "softwareName": name,
            "softwareVersion": version,
        }
    )


def computer(
    id: int, tenant: int = 2, seen_days_ago: int | None = 1, **flags: bool
) -> ImmyComputer:
    seen = None if seen_days_ago is None else AS_OF - timedelta(days=seen_days_ago)
    return ImmyComputer(id=id, tenant_id=tenant, last_seen=seen, **flags)


@pytest.mark.parametrize(
    ("pattern", "text"),
    [
        ("Sentinel Agent", "Sentinel Agent"),  # the pattern's own case: see search_text
        ("  Huntress \t Agent ", "Huntress Agent"),  # whitespace normalised as patterns compare
        ("\uff28untress", "Huntress"),  # and width
        ("Sentinel*Agent", "Sentinel"),  # the longest run between wildcards
        ("*Office*365 Apps*", "365 Apps"),
        ("*", None),  # nothing to search for
        ("**", None),
    ],
)
def test_a_pattern_is_searched_for_by_its_longest_literal_run(pattern, text):
    assert search_text(pattern) == text


def test_one_search_per_text_across_every_rule():
    plan = search_plan(
        [
            rule("SentinelOne", "Sentinel Agent", "Sentinel*Agent"),
            rule("S1 copy", "Sentinel  Agent"),  # the same text: no second request
            rule("Huntress", "Huntress Agent"),
            rule("No detect"),
            rule("Anything", "*"),
        ]
    )
    assert plan == {
        "Huntress Agent": ("Huntress Agent",),
        "Sentinel": ("Sentinel*Agent",),
        "Sentinel Agent": ("Sentinel  Agent", "Sentinel Agent"),
    }


def test_only_rows_a_pattern_matches_are_kept_on_their_computers():
    plan = {"Sentinel": ("Sentinel*Agent",), "Huntress Agent": ("Huntress Agent",)}
    found = {
        "Sentinel": [
            row(4, "Sentinel Agent", "23.4"),
            row(4, "Sentinel Agent", "23.4"),  # twice in the answer: once on the computer
            row(5, "SentinelOne Ranger"),  # the search's superset, not the pattern
            row(99, "Sentinel Agent"),  # a computer the listing does not have
        ],
        "Huntress Agent": [row(5, "Huntress Agent", "0.14")],
    }
    stored = with_software([computer(4), computer(5), computer(6)], found, plan)
    assert [(c.id, [(s.name, s.version) for s in c.software]) for c in stored] == [
        (4, [("Sentinel Agent", "23.4")]),
        (5, [("Huntress Agent", "0.14")]),
        (6, []),
    ]
    assert stored[0].tenant_id == 2 and stored[0].last_seen == AS_OF - timedelta(days=1)
    assert as_stored([computer(7)])[0].software == ()


def test_computers_are_counted_targeted_stale_or_not_deployable():
    stored = as_stored(
        [
            computer(1),
            computer(2, seen_days_ago=40),
            computer(3, seen_days_ago=None),
            computer(4, is_sandbox=True),
            computer(5, is_dev_lab=True, seen_days_ago=90),
            computer(6, excluded=True),
            computer(7, tenant=3, seen_days_ago=29),
            ImmyComputer(id=8, tenant_id=3, last_seen=datetime(2026, 12, 1)),  # naive: UTC
        ]
    )
    tenants = by_tenant(stored, AS_OF, 30)
    assert (tenants[2].targeted, tenants[2].stale, tenants[2].not_deployable) == (1, 2, 3)
    assert (tenants[3].targeted, tenants[3].stale, tenants[3].not_deployable) == (2, 0, 0)
    assert [c.id for c in tenants[3].computers] == [7, 8]


def test_installed_counts_every_computer_carrying_it_whatever_its_flags():
    plan = {"Sentinel Agent": ("Sentinel Agent",)}
    found = {"Sentinel Agent": [row(1, "Sentinel Agent"), row(2, "Sentinel Agent")]}
    stored = with_software([computer(1), computer(2, is_sandbox=True), computer(3)], found, plan)
    inventory = InventoryState(searched=["Sentinel Agent"])
    assert installed_in(stored, ["Sentinel Agent"], inventory).count == 2
    assert installed_in(stored, ["sentinel*agent", "Sentinel Agent"], inventory).count is None
    assert installed_in([], ["Sentinel Agent"], inventory).count == 0


@pytest.mark.parametrize(
    ("detect", "inventory", "why"),
    [
        ([], InventoryState(), "the rule names no detect pattern"),
        (["Sentinel Agent"], None, "the last sync did not read ImmyBot's inventory"),
        (
            ["Sentinel Agent"],
            InventoryState(failed={"Sentinel Agent": "HTTP 403"}),
            "ImmyBot's inventory search for 'Sentinel Agent' failed: HTTP 403",
        ),
        (
            ["Sentinel Agent"],
            InventoryState(searched=["Huntress Agent"]),
            "the last sync did not search ImmyBot's inventory for 'Sentinel Agent' (the next will)",
        ),
        (["*"], InventoryState(), "detect pattern '*' has no text to search for"),
    ],
)
def test_installed_is_unknown_never_zero_when_it_cannot_be_counted(detect, inventory, why):
    found = installed_in(as_stored([computer(1)]), detect, inventory)
    assert (found.count, found.unknown) == (None, why)
