"""A rule's tag on computers (pure): a site-scoped rule tags the computers at its targets' sites,
guards removals like the tenant tag, and moves the tag between tenants and computers safely.

Tenant 1 (client 1, sites 11 and 12) has computers 1-4, tenant 2 (client 2, site 21) computers
5-6: computers 1-2 are at site 11, 3 at site 12, 4 has no site link, 5-6 are at site 21.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.core.computer_tags import Fleet
from shared.core.rules import Rule
from shared.core.site_links import NO_ASSET, SiteLink
from shared.core.tag_base import TagChange, tag_description
from shared.core.tag_plan import plan_rule, write_phases
from shared.core.targets import SiteRef
from shared.records.immybot import ImmyComputer, ImmyTag, ImmyTenant
from tests.conftest import target

TODAY = date(2026, 12, 2)
TAG = ImmyTag(id=7, name="Halo: EDR", description=tag_description("EDR"))
SCOPED = Rule(software="EDR", contract_types=["Managed"], site_ids=[11, 21])
WHOLE = Rule(software="EDR", contract_types=["Managed"])
SITES = {1: 11, 2: 11, 3: 12, 5: 21, 6: 21}
CLIENT_OF = {1: 1, 2: 2}


def tenants(tagged: set[int] = frozenset()) -> dict[int, ImmyTenant]:
    return {
        t: ImmyTenant(id=t, name=f"T{t}", tenantTagIds=[7] if t in tagged else []) for t in (1, 2)
    }


def fleet(tagged: set[int] = frozenset(), links: bool = True) -> Fleet:
    computers = {
        c: ImmyComputer(id=c, computerName=f"PC-{c}", tenantId=1 if c < 5 else 2,
                        computerTagIds=[7] if c in tagged else [])
        for c in range(1, 7)
    }  # fmt: skip
    found = {
        c: SiteLink(
            computer_id=c,
            tenant_id=computers[c].tenant_id,
            client_id=computers[c].tenant_id,
            site_id=SITES.get(c),
            note=None if c in SITES else NO_ASSET,
        )
        for c in computers
    }
    return Fleet(computers, found if links else None)


def targets(*clients: int):
    sites = {1: [11], 2: [21]}
    return [
        target(c, c).model_copy(update={"sites": [SiteRef(id=s, name=f"S{s}") for s in sites[c]]})
        for c in clients
    ]


def plan(rule, found, *, tagged_tenants=frozenset(), computers=None, **kwargs):
    options = {
        "prefix": "Halo: ",
        "max_drop": 0.5,
        "approved": set(),
        "lost_on": {},
        "today": TODAY,
        "generation": "g",
        "now": datetime(2026, 12, 2, tzinfo=UTC),
        "fleet": computers if computers is not None else fleet(),
    }
    tags = {TAG.name.casefold(): TAG} if kwargs.pop("tag", True) else {}
    return plan_rule(rule, found, tenants(tagged_tenants), tags, **options | kwargs)


def test_a_site_scoped_rule_tags_exactly_the_computers_at_its_sites_and_lists_the_unplaced():
    result = plan(SCOPED, targets(1, 2), tag=False)
    assert (result.level, result.should, result.carrying) == ("computer", [1, 2, 5, 6], [])
    assert result.changes == [
        TagChange(tag="Halo: EDR", tag_id=None, create=True, add=[1, 2, 5, 6], level="computer")
    ]
    assert [(u.computer_id, u.reason) for u in result.unplaced] == [(4, NO_ASSET)]
    assert [(s.client_id, s.sites, s.computers) for s in result.site_scope] == [
        (1, [11], [1, 2]),
        (2, [21], [5, 6]),
    ]
    converged = plan(SCOPED, targets(1, 2), computers=fleet({1, 2, 5, 6}))
    assert converged.changes == [] and converged.held is None


def test_computers_leaving_the_scope_lose_the_tag_within_the_guard_and_are_held_beyond_it():
    small = plan(SCOPED, targets(1, 2), computers=fleet({1, 2, 3, 5, 6}))  # 3 is at site 12
    assert small.changes == [TagChange(tag="Halo: EDR", tag_id=7, remove=[3], level="computer")]
    tagged = fleet({1, 2, 5, 6})
    gone = plan(SCOPED, targets(1), computers=tagged, max_drop=0.3)  # client 2 lost coverage
    assert gone.held is not None and (gone.held.level, gone.held.computers) == ("computer", [5, 6])
    assert gone.held.share == 0.5 and gone.changes == []
    within = plan(SCOPED, targets(1), computers=tagged, max_drop=0.5)
    assert within.held is None and within.changes[0].remove == [5, 6]
    approved = plan(SCOPED, targets(1), computers=tagged, max_drop=0.3, approved_computers={5, 6})
    assert approved.held is None and approved.changes[0].remove == [5, 6]


def test_a_rule_becoming_site_scoped_leaves_the_tenants_only_once_approved():
    held = plan(SCOPED, targets(1, 2), tagged_tenants={1, 2})
    assert held.held_cleanup is not None and held.held_cleanup.tenants == [1, 2]
    assert held.changes == [
        TagChange(tag="Halo: EDR", tag_id=7, add=[1, 2, 5, 6], level="computer")
    ]  # the computers are tagged at once: nothing is lost while the removal waits
    approved = plan(SCOPED, targets(1, 2), tagged_tenants={1, 2}, approved={1, 2})
    assert approved.changes[1] == TagChange(tag="Halo: EDR", tag_id=7, remove=[1, 2])
    assert write_phases(approved.changes) == [
        ("add", {("computer", (1, 2, 5, 6)): ["Halo: EDR"]}),
        ("remove", {("tenant", (1, 2)): ["Halo: EDR"]}),
    ]


def test_a_site_scoped_rules_tenants_never_get_its_offboarding_tag():
    rule = SCOPED.model_copy(update={"offboard_days": 10})
    result = plan(rule, targets(1), tagged_tenants={1, 2}, approved={1, 2})
    assert result.offboarding == [2]  # tenant 1 is still a target (at its sites): not offboarded


def test_without_links_nothing_moves():
    result = plan(SCOPED, targets(1, 2), tagged_tenants={1}, computers=fleet({5}, links=False))
    assert result.changes == [] and result.carrying == [5]
    assert {u.computer_id for u in result.unplaced} == {1, 2, 3, 4, 5, 6}


def test_a_rule_no_longer_site_scoped_takes_its_tag_off_computers():
    covered = plan(WHOLE, targets(1, 2), tagged_tenants={1, 2}, computers=fleet({1, 5}))
    assert covered.changes == [
        TagChange(tag="Halo: EDR", tag_id=7, remove=[1, 5], level="computer")
    ]
    assert covered.held_cleanup is None  # their tenants carry the tag: nothing is lost
    losing = plan(WHOLE, targets(1), tagged_tenants={1}, computers=fleet({1, 5}), max_drop=0.3)
    assert losing.held_cleanup is not None and losing.held_cleanup.computers == [5]
    assert losing.changes == [TagChange(tag="Halo: EDR", tag_id=7, remove=[1], level="computer")]
