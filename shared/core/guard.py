"""The mass-change guard: when a new generation's targets must wait for an admin.

A HaloPSA permission change must never uninstall security software fleet-wide, so a generation
that drops more than the allowed share of a rule's current targets (or all of them) is stored but
held rather than made current.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TypedDict


class Drop(TypedDict):
    """How many a rule's targets (or ImmyBot's mapped tenants) would lose."""

    before: int
    after: int
    dropped: int
    share: float


class RejectShare(TypedDict):
    """How many of a record type's records were rejected, per cause."""

    read: int
    rejected: int
    share: float
    causes: dict[str, int]


class Emptied(TypedDict):
    """A record type that had records and came back with none."""

    before: int
    after: int


class VerdictRecord(TypedDict, total=False):
    """A verdict as stored in run records and held entries: only the parts that hold the run."""

    targets: dict[str, Drop]
    mapped_targets: dict[str, Drop]
    mapped_tenants: Drop
    rejects: dict[str, RejectShare]
    empty: dict[str, Emptied]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why a run is held: each part that has something to say (rule keys or record types)."""

    targets: dict[str, Drop] | None = None
    mapped_targets: dict[str, Drop] | None = None
    mapped_tenants: Drop | None = None
    rejects: dict[str, RejectShare] | None = None
    empty: dict[str, Emptied] | None = None

    def parts(self) -> list[str]:
        """The names of the parts that hold the run, in stored order."""
        return [f.name for f in fields(self) if getattr(self, f.name)]

    def record(self) -> VerdictRecord:
        """The stored form (the JSON of run records' `guard` and held entries' reason)."""
        record = VerdictRecord()
        if self.targets:
            record["targets"] = self.targets
        if self.mapped_targets:
            record["mapped_targets"] = self.mapped_targets
        if self.mapped_tenants:
            record["mapped_tenants"] = self.mapped_tenants
        if self.rejects:
            record["rejects"] = self.rejects
        if self.empty:
            record["empty"] = self.empty
        return record


def fingerprint(targets: Mapping[str, Iterable[int]]) -> str:
    """A digest of who is targeted by which rule: equal outcomes have equal fingerprints."""
    canonical = json.dumps({k: sorted(set(v)) for k, v in sorted(targets.items())})
    return hashlib.sha256(canonical.encode()).hexdigest()


def guard_verdict(
    current: Mapping[str, set[int]], new: Mapping[str, set[int]], max_drop: float
) -> dict[str, Drop] | None:
    """Why the new targets must be held, per rule, or None when the change is acceptable."""
    held: dict[str, Drop] = {}
    for key, before in current.items():
        if key not in new or not before:
            continue  # a deleted rule is an admin's explicit act, not a data accident
        dropped = len(before - new[key])
        share = dropped / len(before)
        if share > max_drop or not new[key]:
            held[key] = {
                "before": len(before),
                "after": len(new[key]),
                "dropped": dropped,
                "share": round(share, 4),
            }
    return held or None


# Rejects hold a run when a record type lost more than this share of its records to them.
REJECT_SHARE = 0.01
# The record types whose loss changes coverage: a run holds on rejects only when one of these lost
# records, so a few malformed items or sites alone do not stop billing changes going live.
COVERAGE_KINDS = ("contracts", "invoices", "invoice_lines")
# Parts of a verdict that an agreeing repeat run never confirms: only an admin does.
UNCONFIRMABLE = ("rejects", "empty")


def reject_verdict(
    read: Mapping[str, int], rejected: Mapping[str, Mapping[str, int]]
) -> dict[str, RejectShare] | None:
    """Record types that lost more than 1% of their records to rejects, when coverage lost any.

    `read` counts every record of a type HaloPSA sent (rejected ones included), `rejected` the
    rejects per type and cause. Needs no earlier generation, so it holds the very first sync too.
    """
    if not any(sum(rejected.get(kind, {}).values()) for kind in COVERAGE_KINDS):
        return None
    held: dict[str, RejectShare] = {}
    for kind, causes in rejected.items():
        lost = sum(causes.values())
        total = max(read.get(kind, 0), lost)
        if total and lost / total > REJECT_SHARE:
            held[kind] = {
                "read": total,
                "rejected": lost,
                "share": round(lost / total, 4),
                "causes": dict(causes),
            }
    return held or None


def empty_verdict(before: Mapping[str, int], now: Mapping[str, int]) -> dict[str, Emptied] | None:
    """Record types that had records in the current generation and came back with none."""
    held: dict[str, Emptied] = {
        kind: {"before": count, "after": 0}
        for kind, count in before.items()
        if count > 0 and not now.get(kind, 0)
    }
    return held or None


def tenants_verdict(before: set[int], after: set[int], max_drop: float) -> Drop | None:
    """Why losing mapped ImmyBot tenants must hold the run, or None.

    `before`/`after` are the tenants some client maps to: ImmyBot losing half its tenants (a
    permission change on its side) would otherwise halve every rule's deployable targets.
    """
    if not before:
        return None
    dropped = len(before - after)
    share = dropped / len(before)
    if share > max_drop or not after:
        return {
            "before": len(before),
            "after": len(after),
            "dropped": dropped,
            "share": round(share, 4),
        }
    return None


def confirmable(parts: Collection[str]) -> bool:
    """Whether an agreeing repeat may confirm a verdict with these parts (never for rejects or
    an empty read)."""
    return not any(part in parts for part in UNCONFIRMABLE)
