"""The pure tag plan: naming, the removal guard, offboarding, request counts."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.core.rules import Rule
from shared.core.site_links import NO_LINKS
from shared.core.tag_base import (
    TagChange,
    TagPolicy,
    tag_description,
)
from shared.core.tag_plan import minimum_requests, plan_rule, scope_plan
from shared.records.immybot import ImmyTag, ImmyTenant
from tests.conftest import target

TODAY = date(2026, 12, 2)
NOW = datetime(2026, 12, 2, tzinfo=UTC)
TENANTS = {i: ImmyTenant(id=i, name=f"T{i}", tenantTagIds=[7] if i < 3 else []) for i in (1, 2, 3)}


def policy(approved: frozenset[int] = frozenset()) -> TagPolicy:
    return TagPolicy(prefix="Halo: ", max_drop=0.5, approved=set(approved), lost_on={}, today=TODAY)


def test_a_site_scoped_rule_plans_nothing_while_its_computers_sites_are_unknown():
    rule = Rule(software="EDR", contract_types=["Managed"], site_ids=[5])
    result = plan_rule(
        rule, [target(1, 1)], TENANTS, {}, prefix="Halo: ", max_drop=0.5, approved=set(),
        lost_on={}, today=TODAY, generation="g", now=NOW,
    )  # fmt: skip
    assert (result.tag, result.level, result.changes) == ("Halo: EDR", "computer", [])
    assert result.problem is not None and result.problem.startswith(NO_LINKS)


def test_a_missing_tag_is_created_even_with_no_one_to_tag():
    rule = Rule(software="EDR", contract_types=["Managed"])
    result = plan_rule(
        rule, [], TENANTS, {}, prefix="Halo: ", max_drop=0.5, approved=set(), lost_on={},
        today=TODAY, generation="g", now=NOW,
    )  # fmt: skip
    assert result.changes == [TagChange(tag="Halo: EDR", tag_id=None, create=True)]


def test_minimum_requests_counts_the_read_creations_and_write_groups():
    changes = [
        TagChange(tag="a", tag_id=None, create=True, add=[1, 2]),
        TagChange(tag="b", tag_id=2, add=[1, 2], remove=[3]),
    ]
    assert minimum_requests(changes) == 1 + 1 + 2  # one add group for both, one removal
    assert minimum_requests([]) == 1
    on_computers = TagChange(tag="c", tag_id=3, add=[1, 2], level="computer")
    assert minimum_requests([*changes, on_computers]) == 1 + 1 + 3  # computers 1, 2 are not tenants


def plan(targets, tags, max_drop=0.5):
    rule = Rule(software="EDR", contract_types=["Managed"])
    return plan_rule(
        rule, targets, TENANTS, tags, prefix="Halo: ", max_drop=max_drop, approved=set(),
        lost_on={}, today=TODAY, generation="g", now=NOW,
    )  # fmt: skip


MANAGED = {"halo: edr": ImmyTag(id=7, name="Halo: EDR", description=tag_description("EDR"))}


def test_a_scoped_plan_changes_only_its_tenants():
    # Tenants 1 and 2 carry the tag; the rule now wants 2 and 3: add 3, remove 1.
    full = plan([target(2, 2), target(3, 3)], MANAGED)
    assert [(c.add, c.remove) for c in full.changes] == [([3], [1])]
    assert [(c.add, c.remove) for c in scope_plan(full, frozenset({3})).changes] == [([3], [])]
    assert [(c.add, c.remove) for c in scope_plan(full, frozenset({1})).changes] == [([], [1])]
    assert scope_plan(full, frozenset({2})).changes == []


def test_a_scoped_plan_keeps_a_hold_on_its_tenants_and_creates_a_tag_only_for_them():
    held = plan([], MANAGED)  # everyone would lose the tag: held
    assert held.held is not None and held.changes == []
    assert scope_plan(held, frozenset({1})).held == held.held
    assert scope_plan(held, frozenset({3})).held is None
    missing = plan([target(1, 1)], {})
    assert scope_plan(missing, frozenset({2})).changes == []  # no tag for an unrelated tenant
    (created,) = scope_plan(missing, frozenset({1})).changes
    assert created.create and created.add == [1]


def test_an_events_plan_keeps_the_computer_part_the_last_full_run_stored():
    from shared.core.tag_plan import with_computer_part

    full = plan([target(2, 2), target(3, 3)], MANAGED)
    on_computers = TagChange(tag="Halo: EDR", tag_id=7, remove=[40, 41], level="computer")
    stored = full.model_copy(update={"changes": [*full.changes, on_computers]})
    # An event's run read only its tenants' computers: it plans no computer change itself.
    event = plan([target(2, 2)], MANAGED)
    kept = with_computer_part(event, stored)
    assert kept.changes == [*event.changes, on_computers]
    assert (kept.carrying, kept.should) == (event.carrying, event.should)
    assert with_computer_part(event, None) == event
    site = Rule(software="EDR", contract_types=["Managed"], site_ids=[5])
    site_plan = plan_rule(
        site, [target(1, 1)], TENANTS, {}, prefix="Halo: ", max_drop=0.5, approved=set(),
        lost_on={}, today=TODAY, generation="g", now=NOW,
    )  # fmt: skip
    stored_site = site_plan.model_copy(update={"changes": [on_computers]})
    assert with_computer_part(site_plan, stored_site) == stored_site  # all computer-level
