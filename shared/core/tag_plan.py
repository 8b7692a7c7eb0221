"""The ImmyBot tag changes each rule needs, planned from what ImmyBot holds (pure: no I/O).

Only tags whose description starts with `MANAGED_MARKER` are changed; a removal of more than the
allowed share of a tag's carriers (or of all of them) is held until an admin approves it; a rule
with `offboard_days` also plans `<tag> (offboarding)` for tenants that lost the tag recently. A rule
without a site scope tags its mapped target tenants; a site-scoped one the computers at its
targets' sites (`shared.core.computer_tags`). shared.sync.tags reads the inputs, makes the changes
and stores the plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from shared.core.computer_tags import Fleet, computer_carriers, tag_computers, untag_computers
from shared.core.rules import Rule
from shared.core.site_links import NO_LINKS, Placement, place
from shared.core.tag_base import (
    MANAGED_MARKER,
    OFFBOARDING_SUFFIX,
    Level,
    RuleTags,
    SiteScoped,
    TagChange,
    TagPolicy,
    change,
    held_removal,
    is_managed,
    offboarding_tag_name,
    tag_name,
)
from shared.core.targets import Target
from shared.records.immybot import ImmyTag, ImmyTenant


def plan_rule(
    rule: Rule,
    targets: Sequence[Target],
    tenants: Mapping[int, ImmyTenant],
    tags: Mapping[str, ImmyTag],
    *,
    prefix: str,
    max_drop: float,
    approved: set[int],
    lost_on: Mapping[int, date],
    today: date,
    generation: str,
    now: datetime,
    fleet: Fleet | None = None,
    approved_computers: set[int] | None = None,
) -> RuleTags:
    """The tag changes one rule needs; `tags` by case-folded name, `lost_on` its offboarding
    records (tenant -> the day it lost the tag), `approved` (`approved_computers`) the tenants
    (computers) whose removal an admin approved, `fleet` the computers and their sites (None: not
    read, so computer tags are left as they are)."""
    policy = TagPolicy(prefix, max_drop, approved, lost_on, today, approved_computers or set())
    base: dict[str, Any] = {"software": rule.software, "generation": generation, "planned_at": now}
    name = tag_name(prefix, rule.software)
    wanted = {t.immy_tenant_id for t in targets if t.immy_tenant_id in tenants}
    mapped = {x for x in wanted if x is not None}
    tag = tags.get(name.casefold())
    if tag is not None and not is_managed(tag):
        return _foreign(tag, name, tenants, mapped, base)
    if rule.site_ids is not None:
        return _site_scoped(rule, targets, tenants, tags, tag, fleet, policy, base | {"tag": name})
    carrying = _carriers(tag, tenants)
    add, remove = mapped - carrying, carrying - mapped
    held = held_removal(name, carrying, mapped, remove, policy)
    if held is not None:
        remove = set()
    rule_change = change(name, tag, add, remove, always=tag is None)
    # Computers tagged while the rule was site-scoped: the tenant tag reaches them now.
    cleanup = untag_computers(name, tag, mapped, fleet, policy)
    off_name, offboarding, off_change = _offboarding(rule, tenants, tags, policy, remove, mapped)
    changes = [c for c in (rule_change, cleanup.change, off_change) if c is not None]
    return RuleTags(
        **base,
        tag=name,
        tag_id=tag.id if tag else None,
        carrying=sorted(carrying),
        should=sorted(mapped),
        changes=changes,
        held=held,
        held_cleanup=cleanup.held,
        offboarding_tag=off_name,
        offboarding=sorted(offboarding),
    )


def scope_plan(plan: RuleTags, tenants: frozenset[int]) -> RuleTags:
    """A rule's plan cut down to some tenants (those of the clients an event changed): their
    tenant-level adds and removals (a tag is still created when one of them needs it); the held
    removal stays held when it would take the tag off one of them. Everything else, computer-level
    changes included, waits for the next sync."""
    changes = []
    for planned in plan.changes:
        if planned.level != "tenant":
            continue
        add = [t for t in planned.add if t in tenants]
        remove = [t for t in planned.remove if t in tenants]
        if add or remove:
            changes.append(planned.model_copy(update={"add": add, "remove": remove}))
    held = plan.held
    if held is not None and (held.level != "tenant" or not tenants.intersection(held.tenants)):
        held = None
    return plan.model_copy(update={"changes": changes, "held": held, "held_cleanup": None})


def with_computer_part(plan: RuleTags, stored: RuleTags | None) -> RuleTags:
    """An event's run's plan (computers of its tenants only) with the computer-level part the
    last full run stored: a site-scoped rule's whole plan, a tenant-level rule's computer
    changes and held cleanup."""
    if stored is None or stored.level != plan.level:
        return plan
    if plan.level == "computer":
        return stored
    own = [c for c in plan.changes if c.level != "computer"]
    kept = [c for c in stored.changes if c.level == "computer"]
    return plan.model_copy(update={"changes": own + kept, "held_cleanup": stored.held_cleanup})


def _site_scoped(
    rule: Rule,
    targets: Sequence[Target],
    tenants: Mapping[int, ImmyTenant],
    tags: Mapping[str, ImmyTag],
    tag: ImmyTag | None,
    fleet: Fleet | None,
    policy: TagPolicy,
    base: dict[str, Any],
) -> RuleTags:
    """The tag on the computers at the targets' sites, and off every tenant."""
    name = str(base["tag"])
    common = base | {"tag_id": tag.id if tag else None, "level": "computer"}
    if fleet is None or fleet.links is None:
        # Where the computers are is unknown this run: change nothing rather than guess.
        unknown = place(targets, fleet.computers.values() if fleet else (), None)
        carrying = computer_carriers(tag, fleet)
        return RuleTags(**common, carrying=sorted(carrying), should=[], changes=[],
                        site_scope=_scope(targets, unknown), unplaced=unknown.unplaced,
                        problem=f"{NO_LINKS}: nothing is planned for this rule")  # fmt: skip
    placement = place(targets, fleet.computers.values(), fleet.links)
    computers = tag_computers(name, tag, set(placement.placed), fleet, policy)
    # On a tenant the tag would reach computers outside the rule's sites; taking it off narrows
    # the rule to them, a removal like any other (held when over the share, or all of them).
    on_tenants = _carriers(tag, tenants)
    held = held_removal(name, on_tenants, set(), on_tenants, policy)
    leaving = set() if held is not None else on_tenants
    cleanup = change(name, tag, set(), leaving, always=False)
    mapped = {t.immy_tenant_id for t in targets if t.immy_tenant_id is not None}
    off_name, offboarding, off_change = _offboarding(rule, tenants, tags, policy, leaving, mapped)
    changes = [c for c in (computers.change, cleanup, off_change) if c is not None]
    return RuleTags(
        **common,
        carrying=sorted(computers.carrying),
        should=sorted(placement.placed),
        changes=changes,
        held=computers.held,
        held_cleanup=held,
        offboarding_tag=off_name,
        offboarding=sorted(offboarding),
        site_scope=_scope(targets, placement),
        unplaced=placement.unplaced,
    )


def _scope(targets: Sequence[Target], placement: Placement) -> list[SiteScoped]:
    """Per target client: its in-scope sites and the computers placed at them."""
    by_client: dict[int, list[int]] = defaultdict(list)
    for computer_id, link in placement.placed.items():
        by_client[link.client_id].append(computer_id)
    return [
        SiteScoped(
            client_id=t.client_id,
            client_name=t.client_name,
            immy_tenant_id=t.immy_tenant_id,
            sites=[s.id for s in t.sites],
            computers=sorted(by_client.get(t.client_id, [])),
            note=None if t.immy_tenant_id is not None else "no ImmyBot tenant: map the client",
        )
        for t in targets
    ]


def _foreign(
    tag: ImmyTag,
    name: str,
    tenants: Mapping[int, ImmyTenant],
    should: set[int],
    base: dict[str, Any],
) -> RuleTags:
    # A same-named tag halo-immy did not create is someone else's: reported, never changed.
    return RuleTags(
        **base,
        tag=name,
        tag_id=tag.id,
        carrying=sorted(_carriers(tag, tenants)),
        should=sorted(should),
        changes=[],
        problem=f"a tag named {tag.name!r} exists but halo-immy did not create it (its "
        f"description lacks {MANAGED_MARKER}); it is left alone: rename it, or add the marker",
    )


def _offboarding(
    rule: Rule,
    tenants: Mapping[int, ImmyTenant],
    tags: Mapping[str, ImmyTag],
    policy: TagPolicy,
    removing: set[int],
    should: set[int],
) -> tuple[str | None, set[int], TagChange | None]:
    """The offboarding tag, the tenants that should carry it, and its change (None if nothing
    changes); no tag at all for a rule without `offboard_days`. A tenant in `should` (a target
    of the rule) never carries it, so no computer gets both the install and the uninstall tag."""
    if rule.offboard_days is None:
        return None, set(), None
    name = offboarding_tag_name(policy.prefix, rule.software)
    since = policy.today - timedelta(days=rule.offboard_days)
    offboarding = {t for t, day in policy.lost_on.items() if day >= since} | removing
    offboarding = {t for t in offboarding if t in tenants} - should
    tag = tags.get(name.casefold())
    if tag is not None and not is_managed(tag):
        return None, set(), None
    carrying = _carriers(tag, tenants)
    # Created only once someone needs it: an unused uninstall target is just noise.
    found = change(name, tag, offboarding - carrying, carrying - offboarding, always=False)
    return name, offboarding, found


def _carriers(tag: ImmyTag | None, tenants: Mapping[int, ImmyTenant]) -> set[int]:
    if tag is None:
        return set()
    return {t.id for t in tenants.values() if tag.id in t.tag_ids}


Group = tuple[Level, tuple[int, ...]]


def write_phases(changes: Sequence[TagChange]) -> list[tuple[str, dict[Group, list[str]]]]:
    """The writes in order: rule tags added, then every removal, then offboarding tags added.

    Adds first, so an error mid-way never leaves a tenant or computer without software it should
    have; the offboarding adds last, so a tenant whose removal failed never carries both the
    install and the uninstall tag.
    """
    rule_tags = [c for c in changes if not c.tag.endswith(OFFBOARDING_SUFFIX)]
    offboarding = [c for c in changes if c.tag.endswith(OFFBOARDING_SUFFIX)]
    phases = [
        ("add", write_groups(rule_tags, "add")),
        ("remove", write_groups(changes, "remove")),
        ("add", write_groups(offboarding, "add")),
    ]
    return [(direction, groups) for direction, groups in phases if groups]


def write_groups(changes: Iterable[TagChange], direction: str) -> dict[Group, list[str]]:
    """(level, ids) -> the tags they all get (or lose): one request per distinct set of tenants
    or computers."""
    groups: dict[Group, list[str]] = defaultdict(list)
    for found in changes:
        ids = tuple(found.add if direction == "add" else found.remove)
        if ids:
            groups[(found.level, ids)].append(found.tag)
    return groups


def minimum_requests(changes: Sequence[TagChange]) -> int:
    """The fewest ImmyBot requests the changes need: one read, each creation, each write group."""
    writes = sum(len(groups) for _, groups in write_phases(changes))
    return 1 + sum(c.create for c in changes) + writes
