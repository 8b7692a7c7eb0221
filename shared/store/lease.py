"""The writer lease's row, `SyncState/lease`: one writer of the published state at a time.

Taken unless another owner holds an unexpired lease, renewed and released with ETag concurrency:
each renewal and the release is one write conditioned on the ETag of the holder's own last write
(`LeaseGrant.etag`, then each renewal's), and only when that finds the row changed is it read to
see whose it is. shared.sync.lease holds it for a writer (the heartbeat, `confirm()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.base import STATE_PK, StoreError, TableStore, _utc

# The SDK's retried methods (azure-core RetryPolicy) and PATCH, for writes made safe by If-Match.
_RETRIED_METHODS = frozenset({"HEAD", "GET", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH"})


class LeaseStore(TableStore):
    """The lease row's reads and conditional writes, on top of the table clients."""

    def acquire_lease(
        self,
        owner: str,
        *,
        now: datetime,
        ttl: timedelta,
        started_at: datetime | None = None,
        purpose: str = "sync",
    ) -> LeaseGrant:
        """Take the writer lease unless another owner holds an unexpired one.

        One lease for every writer of the published state (`purpose`: a sync run, or an event
        refresh of one client), so two never publish side by side. The grant is truthy when
        taken; `replaced` names an expired lease of another owner that it took over (a writer
        that stopped without releasing it), `holder` who holds it when not.
        """
        table = self.table("SyncState")
        entity = {
            "PartitionKey": STATE_PK,
            "RowKey": "lease",
            "owner": owner,
            "purpose": purpose,
            "started_at": started_at or now,
            "renewed_at": now,
            "expires_at": now + ttl,
        }
        existing = self._state("lease")
        try:
            if existing is None:
                return LeaseGrant(True, etag=_etag_of(table.create_entity(entity)))
            found = _lease_info(existing)
            if found.expires_at > now and found.owner != owner:
                return LeaseGrant(False, holder=found)
            answer = table.update_entity(
                entity,
                mode=UpdateMode.REPLACE,
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            replaced = found if found.owner != owner else None
            return LeaseGrant(True, replaced=replaced, etag=_etag_of(answer))
        except (ResourceExistsError, ResourceModifiedError):
            return LeaseGrant(False)  # someone else took it between our read and our write

    def renew_lease(
        self, owner: str, *, now: datetime, ttl: timedelta, etag: str | None = None
    ) -> str | None:
        """Extend our lease to `now + ttl`: its new ETag, or None if it is not ours any more.

        With `etag`, the ETag our last write to the lease gave, one conditional write does it:
        nobody else wrote the lease since. Without one, or when that write finds the lease
        changed (our own last renewal whose answer was lost, say), the lease is read first to
        see whose it is, as before.
        """
        table = self.table("SyncState")
        if etag is not None:
            try:
                return self._extend(table, etag, now, ttl)
            except ResourceNotFoundError:
                return None
            except ResourceModifiedError:
                pass
        existing = self._state("lease")
        if existing is None or existing["owner"] != owner:
            return None
        try:
            return self._extend(table, existing.metadata["etag"], now, ttl)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None

    def _extend(self, table: Any, etag: str, now: datetime, ttl: timedelta) -> str:
        """Move the lease's expiry if it still carries `etag`; its new ETag."""
        answer = table.update_entity(
            {
                "PartitionKey": STATE_PK,
                "RowKey": "lease",
                "renewed_at": now,
                "expires_at": now + ttl,
            },
            mode=UpdateMode.MERGE,
            etag=etag,
            match_condition=MatchConditions.IfNotModified,
            # A merge is a PATCH, which the SDK does not retry by default. If-Match makes a retry
            # safe: a first attempt that landed turns the retry into a 412, and the caller then
            # reads the lease to see that it is still ours.
            retry_on_methods=_RETRIED_METHODS,
        )
        renewed = _etag_of(answer)
        if renewed is None:  # Azure and Azurite always answer one; never send "None" as If-Match
            existing = self._state("lease")
            renewed = None if existing is None else _etag_of(existing.metadata)
        if renewed is None:
            raise StoreError("the lease was renewed but storage answered no ETag for it")
        return renewed

    def lease(self) -> LeaseInfo | None:
        """Who holds the writer lease (expired or not), if anyone."""
        existing = self._state("lease")
        return None if existing is None else _lease_info(existing)

    def release_lease(self, owner: str, *, etag: str | None = None) -> None:
        """Give the lease back if we still hold it: with `etag` (our last write's) in one
        conditional delete, else, or when that finds the lease changed, after reading it."""
        table = self.table("SyncState")
        if etag is not None:
            try:
                table.delete_entity(
                    STATE_PK, "lease", etag=etag, match_condition=MatchConditions.IfNotModified
                )
                return
            except ResourceNotFoundError:
                return
            except ResourceModifiedError:
                pass
        existing = self._state("lease")
        if existing is None or existing["owner"] != owner:
            return
        try:
            table.delete_entity(
                STATE_PK,
                "lease",
                etag=existing.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            pass

    def _state(self, row: str) -> Any:
        """A `SyncState` row (the lease, and SyncStateStore's pointer and held rows), or None.

        A read creates no table: before the first sync there is none, which reads as no row (and
        a reader whose key may only read is not refused)."""
        return self.existing_row("SyncState", STATE_PK, row)


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """The writer lease as stored: who holds it, for what, since when, until when."""

    owner: str
    started_at: datetime | None
    expires_at: datetime
    purpose: str = "sync"


@dataclass(frozen=True, slots=True)
class LeaseGrant:
    """The answer to `acquire_lease`: truthy when the lease was taken."""

    acquired: bool
    replaced: LeaseInfo | None = None
    holder: LeaseInfo | None = None
    etag: str | None = None  # the lease's ETag after the write that took it

    def __bool__(self) -> bool:
        return self.acquired


def _etag_of(answer: Mapping[str, Any] | None) -> str | None:
    """The ETag a write's answer carries, if any."""
    etag = (answer or {}).get("etag")
    return None if etag is None else str(etag)


def _lease_info(entity: Mapping[str, Any]) -> LeaseInfo:
    started = entity.get("started_at")
    return LeaseInfo(
        owner=str(entity["owner"]),
        started_at=_utc(started) if isinstance(started, datetime) else None,
        expires_at=_utc(entity["expires_at"]),
        # Leases written before writers said what they were doing were all sync runs'.
        purpose=str(entity.get("purpose") or "sync"),
    )
