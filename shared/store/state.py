"""The sync's control tables: the pointer readers follow, the held generation, the lease, run records.

- `SyncState`: PartitionKey `sync`; RowKey `current` (the pointer readers follow), `held` (a
  generation waiting for approval), `lease` (one writer at a time: shared.store.lease),
  `report_distrust` (report reads disproved by a REST sample: `auto` reads through REST until it
  passes).
- `SyncRuns`: PartitionKey `run`; RowKey sorts newest first.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.base import CHUNK_CHARS, STATE_PK, StoreError, _utc
from shared.store.lease import LeaseStore


@dataclass(frozen=True, slots=True)
class Pointer:
    """Where readers look: the current generation, the one kept for rollback, when it synced."""

    generation: str
    previous: str | None
    synced_at: datetime
    run_id: str
    etag: str | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """A generation the mass-change guard kept from becoming current."""

    generation: str
    run_id: str
    held_at: datetime
    synced_at: datetime
    reason: str
    fingerprint: str


class SyncStateStore(LeaseStore):
    """Pointer, held generation and run records (and the lease, LeaseStore), on top of the table
    clients."""

    # -- pointer, held generation ----------------------------------------------------------------

    def current(self) -> Pointer | None:
        """The generation readers should use, or None before the first successful sync."""
        return _pointer(self._state("current"))

    def current_and_held(self) -> tuple[Pointer | None, Held | None]:
        """The pointer and the held generation in one request (`current()` and `held()` are one
        each), for read paths that count their round trips. A missing table means no sync yet."""
        try:
            rows = {
                str(e["RowKey"]): e
                for e in self.table("SyncState", create=False).query_entities(
                    "PartitionKey eq @pk", parameters={"pk": STATE_PK}
                )
            }
        except ResourceNotFoundError:
            return None, None
        return _pointer(rows.get("current")), _held(rows.get("held"))

    def swap(
        self, generation: str, *, run_id: str, synced_at: datetime, expected: Pointer | None
    ) -> Pointer:
        """Make `generation` current, if the pointer is still `expected` (optimistic concurrency)."""
        entity = {
            "PartitionKey": STATE_PK,
            "RowKey": "current",
            "generation": generation,
            "previous": expected.generation if expected else "",
            "synced_at": synced_at,
            "run_id": run_id,
        }
        table = self.table("SyncState")
        try:
            if expected is None:
                table.create_entity(entity)
            else:
                table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=expected.etag,
                    match_condition=MatchConditions.IfNotModified,
                )
        except (ResourceExistsError, ResourceModifiedError):
            raise StoreError("the current pointer moved during the sync; not swapping") from None
        finally:
            self.note_write()
        pointer = self.current()
        assert pointer is not None
        return pointer

    def held(self) -> Held | None:
        """The generation waiting for approval, if any."""
        return _held(self._state("held"))

    def set_held(self, held: Held | None) -> None:
        """Record (or with None, clear) the generation waiting for approval."""
        self.note_write()  # before and whatever happens: read caches must not keep the old row
        table = self.table("SyncState")
        if held is None:
            try:
                table.delete_entity(STATE_PK, "held")
            except ResourceNotFoundError:
                pass
            return
        table.upsert_entity(
            {
                "PartitionKey": STATE_PK,
                "RowKey": "held",
                "generation": held.generation,
                "run_id": held.run_id,
                "held_at": held.held_at,
                "synced_at": held.synced_at,
                # Callers bound the reason (sync_runs.bounded_json); never cut JSON mid-document.
                "reason": held.reason
                if len(held.reason) <= CHUNK_CHARS
                else json.dumps({"...": f"{len(held.reason)} characters left out"}),
                "fingerprint": held.fingerprint,
            },
            mode=UpdateMode.REPLACE,
        )

    def report_distrust(self) -> ReportDistrust | None:
        """Why and until when `auto` syncs read through REST after a report read was disproved."""
        entity = self._state("report_distrust")
        if entity is None or not isinstance(entity.get("until"), datetime):
            return None
        return ReportDistrust(
            until=_utc(entity["until"]),
            run_id=str(entity.get("run_id", "")),
            reason=str(entity.get("reason", "")),
        )

    def set_report_distrust(self, distrust: ReportDistrust | None) -> None:
        """Record (or with None, clear) that report reads are not to be used until a time."""
        table = self.table("SyncState")
        if distrust is None:
            try:
                table.delete_entity(STATE_PK, "report_distrust")
            except ResourceNotFoundError:
                pass
            return
        table.upsert_entity(
            {
                "PartitionKey": STATE_PK,
                "RowKey": "report_distrust",
                "until": distrust.until,
                "run_id": distrust.run_id,
                "reason": distrust.reason[:CHUNK_CHARS],
            },
            mode=UpdateMode.REPLACE,
        )

    # -- run records -----------------------------------------------------------------------------

    def record_run(self, run_id: str, started_at: datetime, properties: Mapping[str, Any]) -> None:
        """Store one sync run's record (newest sorts first)."""
        entity = {
            "PartitionKey": "run",
            "RowKey": _run_row(run_id, started_at),
            "run_id": run_id,
            **properties,
        }
        self.table("SyncRuns").upsert_entity(entity, mode=UpdateMode.REPLACE)
        self.note_write()  # the tab shows the last run's outcome from a short-lived cache

    def run_record(self, run_id: str, started_at: datetime) -> dict[str, Any] | None:
        """One run's record, if it was written."""
        try:
            return dict(self.table("SyncRuns").get_entity("run", _run_row(run_id, started_at)))
        except ResourceNotFoundError:
            return None

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest run records, newest first."""
        pages = self.table("SyncRuns").query_entities(
            "PartitionKey eq @pk", parameters={"pk": "run"}, results_per_page=limit
        )
        runs: list[dict[str, Any]] = []
        for entity in pages:
            runs.append(dict(entity))
            if len(runs) >= limit:
                break
        return runs


@dataclass(frozen=True, slots=True)
class ReportDistrust:
    """A report read disagreed with REST: `auto` reads through REST until `until`."""

    until: datetime
    run_id: str
    reason: str


def _pointer(entity: Any) -> Pointer | None:
    if entity is None:
        return None
    return Pointer(
        generation=entity["generation"],
        previous=entity.get("previous") or None,
        synced_at=_utc(entity["synced_at"]),
        run_id=entity["run_id"],
        etag=entity.metadata.get("etag"),
    )


def _held(entity: Any) -> Held | None:
    if entity is None:
        return None
    return Held(
        generation=entity["generation"],
        run_id=entity["run_id"],
        held_at=_utc(entity["held_at"]),
        synced_at=_utc(entity["synced_at"]),
        reason=entity["reason"],
        fingerprint=entity["fingerprint"],
    )


def _run_row(run_id: str, started_at: datetime) -> str:
    millis = int(started_at.timestamp() * 1000)
    return f"{10**13 - millis:013d}-{run_id}"
