"""What an ImmyBot tag plan is made of (pure): names, the managed marker, the plan's models and the
removal guard, shared by the tenant plan (`shared.core.tag_plan`) and the computer plan of
site-scoped rules (`shared.core.computer_tags`).

A rule's tag goes on one level: the mapped target tenants, or, for a site-scoped rule, the computers
at its sites (`level`). A change names its level, because tenant and computer ids are different
numbers that may be equal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.site_links import Unplaced
from shared.records.immybot import ImmyTag

MANAGED_MARKER = "[halo-immy]"
OFFBOARDING_SUFFIX = " (offboarding)"

Level = Literal["tenant", "computer"]


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
        else f"tenants (or, for a site-scoped rule, the computers at its sites) entitled to "
        f"{software} by HaloPSA billing"
    )
    return f"{MANAGED_MARKER} Kept equal to the {what} by halo-immy; edits are overwritten."


def is_managed(tag: ImmyTag) -> bool:
    """Whether halo-immy created (and so may change) this tag."""
    return tag.description.startswith(MANAGED_MARKER)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TagChange(_Model):
    """The changes one tag needs on one level: created if missing, ids added and removed."""

    tag: str
    tag_id: int | None = Field(description="Null while the tag does not exist yet.")
    create: bool = False
    add: list[int] = Field(default_factory=list, description="Ids to tag (of `level`).")
    remove: list[int] = Field(default_factory=list, description="Ids to untag (of `level`).")
    level: Level = Field(default="tenant", description="Whether the ids are tenants or computers.")


class HeldRemoval(_Model):
    """A removal the guard keeps waiting for approval, with its numbers (of its `level`)."""

    tag: str
    carrying: int
    should: int
    removing: int
    share: float
    tenants: list[int] = Field(default_factory=list, description="Tenants held (level tenant).")
    computers: list[int] = Field(
        default_factory=list, description="Computers held (level computer)."
    )
    level: Level = "tenant"


class SiteScoped(_Model):
    """A target client of a site-scoped rule: its in-scope sites and the computers at them."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    sites: list[int] = Field(default_factory=list, description="Its sites in the rule's scope.")
    computers: list[int] = Field(
        default_factory=list, description="Its tenant's computers linked to those sites."
    )
    note: str | None = None


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
    tag: str | None = Field(
        description="The rule's tag (null only in plans stored by old versions)."
    )
    tag_id: int | None
    level: Level = Field(
        default="tenant",
        description="What the tag goes on: tenants, or (a site-scoped rule) computers at its sites.",
    )
    carrying: list[int] = Field(
        description="Ids (of `level`) carrying the tag when the run read them."
    )
    should: list[int] = Field(
        description="Ids (of `level`) that should: the mapped target tenants, or the computers "
        "linked to the targets' sites."
    )
    changes: list[TagChange] = Field(
        description="The planned changes (rule tag on both levels, offboarding tag)."
    )
    held: HeldRemoval | None = Field(default=None, description="A held removal on `level`.")
    held_cleanup: HeldRemoval | None = Field(
        default=None,
        description="A held removal from the other level (the tag leaving tenants when a rule "
        "became site-scoped, or computers whose tenant no longer should carry it).",
    )
    offboarding_tag: str | None = None
    offboarding: list[int] = Field(
        default_factory=list, description="Tenants that should carry the offboarding tag."
    )
    site_scope: list[SiteScoped] = Field(
        default_factory=list, description="A site-scoped rule's target clients, sites, computers."
    )
    unplaced: list[Unplaced] = Field(
        default_factory=list,
        description="Computers of a site-scoped rule's target tenants whose site is unknown.",
    )
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
    approved_computers: set[int] = field(default_factory=set)  # the same, for computers


def held_removal(
    name: str,
    carrying: set[int],
    should: set[int],
    remove: set[int],
    policy: TagPolicy,
    level: Level = "tenant",
) -> HeldRemoval | None:
    """The removal held for approval: more than `max_drop` of the carriers, or all, unapproved."""
    share = len(remove) / len(carrying) if carrying else 0.0
    approved = policy.approved if level == "tenant" else policy.approved_computers
    if not remove or not (share > policy.max_drop or not should) or remove <= approved:
        return None
    ids = sorted(remove)
    return HeldRemoval(
        tag=name,
        carrying=len(carrying),
        should=len(should),
        removing=len(remove),
        share=round(share, 4),
        tenants=ids if level == "tenant" else [],
        computers=ids if level == "computer" else [],
        level=level,
    )


def change(
    name: str,
    tag: ImmyTag | None,
    add: set[int],
    remove: set[int],
    *,
    always: bool,
    level: Level = "tenant",
) -> TagChange | None:
    """The change of one tag on one level; None when there is nothing to do (unless `always`)."""
    if not (always or add or remove):
        return None
    return TagChange(
        tag=name,
        tag_id=tag.id if tag else None,
        create=tag is None,
        add=sorted(add),
        remove=sorted(remove),
        level=level,
    )
