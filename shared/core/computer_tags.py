"""A rule's ImmyBot tag on computers (pure: no I/O).

A site-scoped rule cannot be a tenant tag (the tag would reach every computer of the tenant), so
its tag goes on the computers at its targets' sites, found through the links asset population keeps
(`shared.core.site_links`); computers whose site is unknown are listed, not tagged. The same guard
as for tenants holds a removal of more than `SYNC_MAX_DROP` of the computers carrying the tag, or of
all of them, until an admin approves it.

The tag lives on one level at a time: a site-scoped rule takes it off tenants (guarded: that
narrows the rule to its sites), a rule without a site scope takes it off computers (unguarded where
the computer's tenant carries the tag anyway, since nothing is lost there).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

from shared.core.site_links import SiteLink
from shared.core.tag_base import HeldRemoval, TagChange, TagPolicy, change, held_removal
from shared.records.immybot import ImmyComputer, ImmyTag


@dataclass(frozen=True, slots=True)
class Fleet:
    """ImmyBot's computers as the generation holds them, and where they are (None: the
    generation has no complete set of computer-to-site links)."""

    computers: Mapping[int, ImmyComputer]
    links: Mapping[int, SiteLink] | None
    # Tag id -> the computers carrying it, indexed once: every rule asks, of every computer.
    by_tag: Mapping[int, frozenset[int]] = field(init=False)

    def __post_init__(self) -> None:
        carried: dict[int, set[int]] = defaultdict(set)
        for computer in self.computers.values():
            for tag_id in computer.tag_ids:
                carried[tag_id].add(computer.id)
        object.__setattr__(self, "by_tag", {t: frozenset(ids) for t, ids in carried.items()})


@dataclass(frozen=True, slots=True)
class ComputerChange:
    """The computer-level part of a rule's plan."""

    carrying: set[int]
    change: TagChange | None
    held: HeldRemoval | None


def computer_carriers(tag: ImmyTag | None, fleet: Fleet | None) -> set[int]:
    """The computers carrying `tag`, as the generation read them."""
    if tag is None or fleet is None:
        return set()
    return set(fleet.by_tag.get(tag.id, ()))


def tag_computers(
    name: str, tag: ImmyTag | None, should: set[int], fleet: Fleet, policy: TagPolicy
) -> ComputerChange:
    """A site-scoped rule's tag made equal to `should` (created when missing), its removal
    guarded."""
    carrying = computer_carriers(tag, fleet)
    add, remove = should - carrying, carrying - should
    held = held_removal(name, carrying, should, remove, policy, "computer")
    if held is not None:
        remove = set()
    found = change(name, tag, add, remove, always=tag is None, level="computer")
    return ComputerChange(carrying, found, held)


def untag_computers(
    name: str, tag: ImmyTag | None, tenants: set[int], fleet: Fleet | None, policy: TagPolicy
) -> ComputerChange:
    """A tenant-level rule's tag taken off every computer; `tenants` carry (or get) it, so their
    computers lose nothing and only the others count for the guard."""
    carrying = computer_carriers(tag, fleet)
    if not carrying or fleet is None:
        return ComputerChange(carrying, None, None)
    losing = {c for c in carrying if fleet.computers[c].tenant_id not in tenants}
    held = held_removal(name, carrying, carrying - losing, losing, policy, "computer")
    remove = carrying - losing if held is not None else carrying
    return ComputerChange(
        carrying, change(name, tag, set(), remove, always=False, level="computer"), held
    )
