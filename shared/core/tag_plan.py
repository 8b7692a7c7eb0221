"""The ImmyBot tag changes each rule needs, planned from what ImmyBot holds (pure: no I/O).

Only tags whose description starts with `MANAGED_MARKER` are changed; a removal of more than the
allowed share of a tag's tenants (or of all of them) is held until an admin approves it; a rule
with `offboard_days` also plans `<tag> (offboarding)` for tenants that lost the tag recently.
shared.sync.tags reads the inputs, makes the changes and stores the plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.core.rules import Rule
from shared.core.targets import Target
from shared.records.immybot import ImmyTag, ImmyTenant

MANAGED_MARKER = "[halo-immy]"
OFFBOARDING_SUFFIX = " (offboarding)"
SITE_SCOPE_NOTE = "site scope: not tagged"


class TagMode(StrEnum):
    """`IMMY_TAGS`."""

    OFF = "off"
    PLAN = "plan"
    APPLY = "apply"


def tag_name(prefix: str, software: str) -> str:
    """The tag of a rule."""
    return f"{prefix}{software}"


def offboarding_tag_name(prefix: str, software: str) -> str:
    """The tag of a rule's recently offboarded tenants."""
    return f"{prefix}{software}{OFFBOARDING_SUFFIX}"


def tag_description(software: str, *, offboarding: bool = False) -> str:
    """The description that marks a tag as managed by halo-immy (and tells a human why)."""
    what = (
        f"tenants that recently lost {software} in HaloPSA billing (uninstall target)"
        if offboarding
        else f"tenants entitled to {software} by HaloPSA billing"
    )
    return f"{MANAGED_MARKER} Kept equal to the {what} by halo-immy; edits are overwritten."


def is_managed(tag: ImmyTag) -> bool:
    """Whether halo-immy created (and so may change) this tag."""
    return tag.description.startswith(MANAGED_MARKER)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TagChange(_Model):
    """The changes one tag needs: created if missing, tenants added and removed."""

    tag: str
    tag_id: int | None = Field(description="Null while the tag does not exist yet.")
    create: bool = False
    add: list[int] = Field(default_factory=list, description="Tenant ids to tag.")
    remove: list[int] = Field(default_factory=list, description="Tenant ids to untag.")


class HeldRemoval(_Model):
    """A removal the guard keeps waiting for approval, with its numbers."""

    tag: str
    carrying: int
    should: int
    removing: int
    share: float
    tenants: list[int]


class SiteScoped(_Model):
    """A client of a site-scoped rule: tags are per tenant, so it is not tagged."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    note: str = SITE_SCOPE_NOTE


class ApplyResult(_Model):
    """What one run did (or, in plan mode, would have done) to ImmyBot's tags."""

    at: datetime
    mode: TagMode
    generation: str
    added: int = 0
    removed: int = 0
    created: list[str] = Field(default_factory=list)
    requests: int = Field(default=0, description="Tag requests sent (reads and writes).")
    minimum_requests: int = Field(
        default=0, description="The fewest requests the same changes need."
    )
    held: list[str] = Field(default_factory=list, description="Tags whose removal is held.")
    error: str | None = None


class RuleTags(_Model):
    """`GET /api/immybot/tags`, per rule: the tag, who carries it, who should, and the plan."""

    software: str
    tag: str | None = Field(description="Null for a site-scoped rule (not tagged).")
    tag_id: int | None
    carrying: list[int] = Field(description="Tenants carrying the tag when the run read them.")
    should: list[int] = Field(description="The rule's mapped target tenants.")
    changes: list[TagChange] = Field(description="The planned changes (rule and offboarding tag).")
    held: HeldRemoval | None = None
    offboarding_tag: str | None = None
    offboarding: list[int] = Field(
        default_factory=list, description="Tenants that should carry the offboarding tag."
    )
    site_scope: list[SiteScoped] = Field(default_factory=list)
    problem: str | None = None
    generation: str
    planned_at: datetime
    last_apply: ApplyResult | None = None


@dataclass(frozen=True, slots=True)
class TagPolicy:
    """How tags are named and guarded, and what a rule's stored memory says."""

    prefix: str
    max_drop: float
    approved: set[int]  # tenants whose held removal an admin approved
    lost_on: Mapping[int, date]  # tenant -> the day it lost the rule's tag (offboarding records)
    today: date


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
) -> RuleTags:
    """The tag changes one rule needs; `tags` by case-folded name, `lost_on` its offboarding
    records (tenant -> the day it lost the tag), `approved` tenants whose removal an admin
    approved."""
    policy = TagPolicy(prefix, max_drop, approved, lost_on, today)
    base: dict[str, Any] = {"software": rule.software, "generation": generation, "planned_at": now}
    if rule.site_ids is not None:
        return _site_scoped(targets, base)
    name = tag_name(prefix, rule.software)
    wanted = {t.immy_tenant_id for t in targets if t.immy_tenant_id in tenants}
    should = {x for x in wanted if x is not None}
    tag = tags.get(name.casefold())
    if tag is not None and not is_managed(tag):
        return _foreign(tag, name, tenants, should, base)
    carrying = _carriers(tag, tenants)
    add, remove = should - carrying, carrying - should
    held = held_removal(name, carrying, should, remove, policy)
    if held is not None:
        remove = set()
    rule_change = _change(name, tag, add, remove, always=tag is None)
    off_name: str | None = None
    offboarding: set[int] = set()
    off_change: TagChange | None = None
    if rule.offboard_days is not None:
        off_name, offboarding, off_change = _offboarding(
            rule, rule.offboard_days, tenants, tags, policy, remove, should
        )
    changes = [c for c in (rule_change, off_change) if c is not None]
    return RuleTags(
        **base,
        tag=name,
        tag_id=tag.id if tag else None,
        carrying=sorted(carrying),
        should=sorted(should),
        changes=changes,
        held=held,
        offboarding_tag=off_name,
        offboarding=sorted(offboarding),
    )


def scope_plan(plan: RuleTags, tenants: frozenset[int]) -> RuleTags:
    """A rule's plan cut down to some tenants (those of the clients an event changed): their adds
    and removals (a tag is still created when one of them needs it); the held removal stays held
    when it would take the tag off one of them. Everything else waits for the next sync."""
    changes = []
    for change in plan.changes:
        add = [t for t in change.add if t in tenants]
        remove = [t for t in change.remove if t in tenants]
        if add or remove:
            changes.append(change.model_copy(update={"add": add, "remove": remove}))
    held = plan.held if plan.held and tenants.intersection(plan.held.tenants) else None
    return plan.model_copy(update={"changes": changes, "held": held})


def _site_scoped(targets: Sequence[Target], base: dict[str, Any]) -> RuleTags:
    # Tags are per tenant: a rule scoped to sites cannot be one, so its clients are listed.
    scoped = [
        SiteScoped(
            client_id=t.client_id, client_name=t.client_name, immy_tenant_id=t.immy_tenant_id
        )
        for t in targets
    ]
    return RuleTags(**base, tag=None, tag_id=None, carrying=[], should=[], changes=[],
                    site_scope=scoped)  # fmt: skip


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


def held_removal(
    name: str, carrying: set[int], should: set[int], remove: set[int], policy: TagPolicy
) -> HeldRemoval | None:
    """The removal held for approval: more than `max_drop` of the carriers, or all, unapproved."""
    share = len(remove) / len(carrying) if carrying else 0.0
    if not remove or not (share > policy.max_drop or not should) or remove <= policy.approved:
        return None
    return HeldRemoval(
        tag=name,
        carrying=len(carrying),
        should=len(should),
        removing=len(remove),
        share=round(share, 4),
        tenants=sorted(remove),
    )


def _change(
    name: str, tag: ImmyTag | None, add: set[int], remove: set[int], *, always: bool
) -> TagChange | None:
    if not (always or add or remove):
        return None
    return TagChange(
        tag=name,
        tag_id=tag.id if tag else None,
        create=tag is None,
        add=sorted(add),
        remove=sorted(remove),
    )


def _offboarding(
    rule: Rule,
    days: int,
    tenants: Mapping[int, ImmyTenant],
    tags: Mapping[str, ImmyTag],
    policy: TagPolicy,
    removing: set[int],
    should: set[int],
) -> tuple[str | None, set[int], TagChange | None]:
    """The offboarding tag, who should carry it, and its change (None if nothing changes)."""
    name = offboarding_tag_name(policy.prefix, rule.software)
    since = policy.today - timedelta(days=days)
    offboarding = {t for t, day in policy.lost_on.items() if day >= since} | removing
    offboarding = {t for t in offboarding if t in tenants} - should
    tag = tags.get(name.casefold())
    if tag is not None and not is_managed(tag):
        return None, set(), None
    carrying = _carriers(tag, tenants)
    # Created only once someone needs it: an unused uninstall target is just noise.
    change = _change(name, tag, offboarding - carrying, carrying - offboarding, always=False)
    return name, offboarding, change


def _carriers(tag: ImmyTag | None, tenants: Mapping[int, ImmyTenant]) -> set[int]:
    if tag is None:
        return set()
    return {t.id for t in tenants.values() if tag.id in t.tag_ids}


def write_phases(
    changes: Sequence[TagChange],
) -> list[tuple[str, dict[tuple[int, ...], list[str]]]]:
    """The writes in order: rule tags added, then every removal, then offboarding tags added.

    Adds first, so an error mid-way never leaves a tenant without software it should have; the
    offboarding adds last, so a tenant whose removal failed never carries both the install and the
    uninstall tag.
    """
    rule_tags = [c for c in changes if not c.tag.endswith(OFFBOARDING_SUFFIX)]
    offboarding = [c for c in changes if c.tag.endswith(OFFBOARDING_SUFFIX)]
    phases = [
        ("add", write_groups(rule_tags, "add")),
        ("remove", write_groups(changes, "remove")),
        ("add", write_groups(offboarding, "add")),
    ]
    return [(direction, groups) for direction, groups in phases if groups]


def write_groups(changes: Iterable[TagChange], direction: str) -> dict[tuple[int, ...], list[str]]:
    """Tenants -> the tags they all get (or lose): one request per distinct set of tenants."""
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for change in changes:
        tenants = tuple(change.add if direction == "add" else change.remove)
        if tenants:
            groups[tenants].append(change.tag)
    return groups


def minimum_requests(changes: Sequence[TagChange]) -> int:
    """The fewest ImmyBot requests the changes need: one read, each creation, each write group."""
    writes = sum(len(groups) for _, groups in write_phases(changes))
    return 1 + sum(c.create for c in changes) + writes
