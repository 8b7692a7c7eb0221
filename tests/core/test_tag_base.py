"""Tag names, the managed marker, the hold for mass removals and one change: shared.core.tag_base."""

from __future__ import annotations

from datetime import date

from shared.core.tag_base import (
    MANAGED_MARKER,
    TagChange,
    TagPolicy,
    change,
    held_removal,
    is_managed,
    offboarding_tag_name,
    tag_description,
    tag_name,
)
from shared.records.immybot import ImmyTag

TODAY = date(2026, 12, 6)


def policy(approved: frozenset[int] = frozenset()) -> TagPolicy:
    return TagPolicy(prefix="Halo: ", max_drop=0.5, approved=set(approved), lost_on={}, today=TODAY)


def test_names_and_the_managed_marker():
    assert tag_name("Halo: ", "EDR") == "Halo: EDR"
    assert offboarding_tag_name("Halo: ", "EDR") == "Halo: EDR (offboarding)"
    assert tag_description("EDR").startswith(MANAGED_MARKER)
    assert "uninstall" in tag_description("EDR", offboarding=True)
    assert is_managed(ImmyTag(id=1, name="x", description=tag_description("EDR")))
    assert not is_managed(ImmyTag(id=1, name="x", description="by hand"))


def test_a_removal_within_the_share_is_not_held():
    assert held_removal("t", {1, 2, 3, 4}, {1, 2, 3}, {4}, policy()) is None
    assert held_removal("t", {1, 2}, {1, 2}, set(), policy()) is None


def test_a_removal_over_the_share_or_of_everyone_is_held_unless_approved():
    held = held_removal("t", {1, 2, 3}, {1}, {2, 3}, policy())
    assert held is not None and (held.removing, held.share, held.tenants) == (2, 0.6667, [2, 3])
    on_computers = held_removal("t", {1, 2, 3}, {1}, {2, 3}, policy(frozenset({2, 3})), "computer")
    assert on_computers is not None and (on_computers.computers, on_computers.tenants) == (
        [2, 3],
        [],
    )
    assert held_removal("t", {1}, set(), {1}, policy()) is not None  # all of them
    assert held_removal("t", {1, 2, 3}, {1}, {2, 3}, policy(approved=frozenset({2, 3, 9}))) is None


def test_a_change_is_none_when_there_is_nothing_to_do_unless_asked_for():
    tag = ImmyTag(id=3, name="Halo: EDR", description=tag_description("EDR"))
    assert change("Halo: EDR", tag, set(), set(), always=False) is None
    assert change("Halo: EDR", None, set(), set(), always=True) == TagChange(
        tag="Halo: EDR", tag_id=None, create=True
    )
    made = change("Halo: EDR", tag, {3, 1}, {2}, always=False, level="computer")
    assert made == TagChange(tag="Halo: EDR", tag_id=3, add=[1, 3], remove=[2], level="computer")
