"""Where a rule's software really is: ImmyBot's inventory, read in bulk by the sync and counted here.

The sync asks ImmyBot's inventory search once per search text (`search_plan`: one text per detect
pattern, shared by rules that share it), keeps the rows a rule's pattern matches on the computers
they belong to (`with_software`), and stores them with the computers. Readers then count, per
tenant, the computers a rule reaches (`targeted`) and those carrying its software (`installed`),
or say why installed is not known (`installed_in`) — never 0 for "not known".

Counting follows ImmyBot's own rules (docs/design.md, `shared.core.reach`): sandbox, dev-lab and
excluded-from-maintenance computers are not deployment targets; a deployable computer not seen for
`stale_days` is counted apart as stale. Installed counts every computer of the tenant whose
inventory shows the software, whatever its flags or age: an agent uses a licence wherever it runs.
"""

from __future__ import annotations

import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.core.detection import matches
from shared.core.reach import Kind, kind_of
from shared.core.rules import Rule
from shared.records.immybot import ImmyComputer, InventoryRow


class SoftwareSeen(BaseModel):
    """A display name (and version) ImmyBot's inventory shows on a computer."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str = ""


class StoredComputer(ImmyComputer):
    """A computer as a generation stores it: ImmyBot's record plus the software the inventory
    search found on it that some rule's detect pattern matches (empty: none found, or not read)."""

    software: tuple[SoftwareSeen, ...] = ()


class InventoryState(BaseModel):
    """What a generation holds of ImmyBot's inventory: which search texts were read, which failed."""

    model_config = ConfigDict(frozen=True)

    searched: list[str] = Field(
        default_factory=list, description="Search texts ImmyBot answered (normalised)."
    )
    failed: dict[str, str] = Field(
        default_factory=dict, description="Search text -> why ImmyBot did not answer it."
    )
    rows: int = Field(default=0, description="Inventory rows kept (matching a detect pattern).")
    note: str | None = Field(default=None, description="Carried over from an older generation.")


def search_text(pattern: str) -> str | None:
    """What to ask ImmyBot's search for one detect pattern: its longest run without `*`, or None
    for a pattern of only `*`. The rows it answers are a superset, narrowed by the pattern itself.

    Width and whitespace are normalised as the patterns compare, but the case is the pattern's
    own: ImmyBot's OpenAPI document does not say whether its "contains" search ignores case, and
    a pattern written as the display name reads it ("Sentinel Agent") finds it either way, where
    a case-folded text would find nothing on a case-sensitive server (installed 0 everywhere)."""
    folded = " ".join(unicodedata.normalize("NFKC", pattern).split())
    runs = [run.strip() for run in folded.split("*")]
    longest = max(runs, key=len, default="")
    return longest or None


def search_plan(rules: Iterable[Rule]) -> dict[str, tuple[str, ...]]:
    """Search text -> the detect patterns it serves, over every rule: one request per text."""
    plan: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        for pattern in rule.detect:
            text = search_text(pattern)
            if text is not None:
                plan[text].add(pattern)
    return {text: tuple(sorted(patterns)) for text, patterns in sorted(plan.items())}


def with_software(
    computers: Iterable[ImmyComputer],
    found: Mapping[str, Sequence[InventoryRow]],
    plan: Mapping[str, Sequence[str]],
) -> list[StoredComputer]:
    """The computers with the inventory rows of each search text that one of its patterns
    matches; rows of computers not in the list (deleted since) are dropped."""
    seen: dict[int, set[SoftwareSeen]] = defaultdict(set)
    for text, rows in found.items():
        patterns = plan.get(text, ())
        for row in rows:
            if any(matches(p, row.name) for p in patterns):
                seen[row.computer_id].add(SoftwareSeen(name=row.name, version=row.version))
    return [
        _stored(computer, sorted(seen.get(computer.id, ()), key=lambda s: (s.name, s.version)))
        for computer in computers
    ]


def as_stored(computers: Iterable[ImmyComputer]) -> list[StoredComputer]:
    """The computers as stored, with no software (ImmyBot's inventory not read)."""
    return [c if isinstance(c, StoredComputer) else _stored(c, ()) for c in computers]


def _stored(computer: ImmyComputer, software: Iterable[SoftwareSeen]) -> StoredComputer:
    # Validated again from its own field values: pydantic-core does that in about a third of
    # model_construct's time (a sync copies every computer: 5,000 and more).
    return StoredComputer.model_validate({**computer.__dict__, "software": tuple(software)})


# -- counting -----------------------------------------------------------------------------------


@dataclass(slots=True)
class TenantComputers:
    """One tenant's computers as of a sync: counts by kind, the computers, and each one's kind."""

    targeted: int = 0
    stale: int = 0
    not_deployable: int = 0
    computers: list[StoredComputer] = field(default_factory=list)
    kinds: dict[int, Kind] = field(default_factory=dict)

    def add(self, computer: StoredComputer, kind: Kind) -> None:
        """Count one more computer of `kind`."""
        self.computers.append(computer)
        self.kinds[computer.id] = kind
        if kind == "targeted":
            self.targeted += 1
        elif kind == "stale":
            self.stale += 1
        else:
            self.not_deployable += 1

    def within(self, keep: Callable[[StoredComputer], bool]) -> TenantComputers:
        """Only the computers `keep` says yes to, counted again (a site-scoped rule's sites)."""
        kept = TenantComputers()
        for computer in self.computers:
            if keep(computer):
                kept.add(computer, self.kinds[computer.id])
        return kept


def by_tenant(
    computers: Iterable[StoredComputer], as_of: datetime, stale_days: int
) -> dict[int, TenantComputers]:
    """Per tenant: computers a deployment reaches (deployable, seen within `stale_days` of
    `as_of`), stale ones, not-deployable ones, and the list (`shared.core.reach.kind_of`)."""
    tenants: dict[int, TenantComputers] = defaultdict(TenantComputers)
    for computer in computers:
        tenants[computer.tenant_id].add(computer, kind_of(computer, as_of, stale_days))
    return dict(tenants)


@dataclass(frozen=True, slots=True)
class Installed:
    """How many computers carry a software, or None and why that is not known."""

    count: int | None
    unknown: str | None = None


def installed_in(
    computers: Iterable[StoredComputer], detect: Sequence[str], inventory: InventoryState | None
) -> Installed:
    """The computers among `computers` whose stored inventory a pattern of `detect` matches;
    unknown when the rule names no pattern or the sync did not read every pattern's search."""
    why = unknown_because(detect, inventory)
    if why is not None:
        return Installed(None, why)
    count = sum(any(matches(p, s.name) for p in detect for s in c.software) for c in computers)
    return Installed(count)


def unknown_because(detect: Sequence[str], inventory: InventoryState | None) -> str | None:
    """Why installed cannot be counted for a rule with `detect`, or None when it can."""
    if not detect:
        return "the rule names no detect pattern"
    if inventory is None:
        return "the last sync did not read ImmyBot's inventory"
    for pattern in detect:
        text = search_text(pattern)
        if text is None:
            return f"detect pattern {pattern!r} has no text to search for"
        if text in inventory.failed:
            return f"ImmyBot's inventory search for {text!r} failed: {inventory.failed[text]}"
        if text not in inventory.searched:
            return f"the last sync did not search ImmyBot's inventory for {text!r} (the next will)"
    return None
