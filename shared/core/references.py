"""Ids a request names (HaloPSA clients and sites, ImmyBot tenants) against the ids a snapshot holds.

Both products number records with ids that only grow and are never reused (HaloPSA's are SQL
Server identity columns, AREA.Aarea, SITE.Ssitenum, halo-openapi/halo-sql-columns.json; ImmyBot's
tenant ids likewise, assumed). So an id the snapshot lacks but at or below the newest id of its
kind that the snapshot holds names a record that is gone or never was: the request is refused.
An id above the newest one may name a record created since the snapshot was read: it is accepted
with a warning, and the next sync tells. No window above the newest id is refused: SQL Server
identity columns jump (by 1000 after a restart), so a new record's id may be far above the last.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Named:
    """The ids one request field names, of one kind ("HaloPSA client"), and the ids the snapshot
    holds of that kind; None, and why, when nothing holds them to check against."""

    field: str
    kind: str
    ids: Sequence[int]
    known: Collection[int] | None
    unchecked_because: str = "no snapshot holds them yet"


@dataclass(frozen=True, slots=True)
class Unknown:
    """What a field names that the snapshot does not hold."""

    field: str
    kind: str
    gone: tuple[int, ...]  # at or below the newest known id: not there
    newer: tuple[int, ...]  # above it: perhaps created since the snapshot
    newest: int | None


@dataclass(frozen=True, slots=True)
class Checked:
    """The unknown ids of a request, field by field, and the fields nothing could check (with
    why)."""

    unknown: tuple[Unknown, ...]
    unchecked: tuple[tuple[str, str], ...]

    @property
    def refused(self) -> dict[str, list[int]]:
        """Field -> the ids that cannot exist (empty: nothing to refuse)."""
        return {u.field: list(u.gone) for u in self.unknown if u.gone}


def check_ids(named: Iterable[Named]) -> Checked:
    """Sort each field's ids the snapshot lacks into gone and perhaps newer (module docstring)."""
    unknown: list[Unknown] = []
    unchecked: list[tuple[str, str]] = []
    for field in named:
        if not field.ids:
            continue
        if field.known is None:
            unchecked.append((field.field, field.unchecked_because))
            continue
        newest = max(field.known, default=None)
        missing = sorted({i for i in field.ids if i not in field.known})
        gone = tuple(i for i in missing if newest is not None and i <= newest)
        newer = tuple(i for i in missing if newest is None or i > newest)
        if missing:
            unknown.append(Unknown(field.field, field.kind, gone, newer, newest))
    return Checked(tuple(unknown), tuple(unchecked))


def _snapshot(synced_at: datetime | None) -> str:
    when = synced_at.strftime("%Y-%m-%dT%H:%M:%SZ") if synced_at else "at a time unknown"
    return f"the snapshot synced {when}"


def _ids(kind: str, ids: Sequence[int]) -> str:
    listed = ", ".join(str(i) for i in ids[:10]) + (" ..." if len(ids) > 10 else "")
    return f"{kind}{'s' if len(ids) > 1 else ''} {listed} {'are' if len(ids) > 1 else 'is'}"


def _holds(unknown: Unknown) -> str:
    if unknown.newest is None:
        return f"holds no {unknown.kind}"
    return f"holds {unknown.kind}s up to id {unknown.newest}"


def refusal(checked: Checked, synced_at: datetime | None) -> str:
    """Why the request is refused: each field's ids that cannot exist."""
    return "; ".join(
        f"{u.field}: {_ids(u.kind, u.gone)} not in {_snapshot(synced_at)}, which {_holds(u)} "
        "(ids are never reused): deleted, or never there"
        for u in checked.unknown
        if u.gone
    )


def warnings(checked: Checked, synced_at: datetime | None) -> list[str]:
    """What was accepted unconfirmed: ids perhaps newer than the snapshot, and fields nothing
    could check."""
    found = [
        f"{u.field}: {_ids(u.kind, u.newer)} not in {_snapshot(synced_at)}, which {_holds(u)}: "
        "perhaps created since; the next sync will tell"
        for u in checked.unknown
        if u.newer
    ]
    found += [f"{field}: not checked, {why}" for field, why in checked.unchecked]
    return found
