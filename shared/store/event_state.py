"""What HaloPSA's webhook events leave in Table Storage: counts, pending look-agains, last reads.

Table `HaloEvents` (with the store's prefix):
- PartitionKey `stats`: RowKey `receiver` (deliveries, events per kind, messages queued, unknown
  event names) and `refresh` (refreshes and their outcomes, the last ones, poison messages and
  their reasons): one JSON document each, updated with ETag concurrency.
- PartitionKey `pending`: one row per key (`client|42`, `contract|17`) a message asked to look at
  again and no refresh has read since; a refresh that holds the sync lease drains them, and a
  full sync answers those asked for before its read began.
- PartitionKey `refreshed`: per key, when a refresh last read it from HaloPSA, so a message
  received before that read is already answered (coalesced).

Counts and reasons only: never payload values, names or customer text.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.base import StoreConflict, _utc, check_key, decode_data, encode_data
from shared.store.repository import Store

TABLE = "HaloEvents"
_STATS, _PENDING, _REFRESHED = "stats", "pending", "refreshed"
RECEIVER, REFRESH = "receiver", "refresh"
_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class PendingKey:
    """A key waiting for a refresh, since when, and its row's version (to drop it only if no new
    message came meanwhile)."""

    key: str
    received_at: datetime
    etag: str


def update_stats(store: Store, row: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to a stats document (created empty), retrying when another writer won.

    StoreConflict when it keeps losing: a count is then missing, which its caller logs.
    """
    table = store.table(TABLE)
    for attempt in range(_ATTEMPTS):
        try:
            entity = table.get_entity(_STATS, row)
        except ResourceNotFoundError:
            entity = None
        document: dict[str, Any] = json.loads(decode_data(entity)) if entity else {}
        change(document)
        fresh = {"PartitionKey": _STATS, "RowKey": row, **encode_data(json.dumps(document))}
        try:
            if entity is None:
                table.create_entity(fresh)
            else:
                table.update_entity(
                    fresh,
                    mode=UpdateMode.REPLACE,
                    etag=entity.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            return
        except (ResourceExistsError, ResourceModifiedError):
            # Spread the retries of writers that collided.
            time.sleep(random.uniform(0, 0.02 * (attempt + 1)))  # noqa: S311 - jitter
    raise StoreConflict(f"HaloEvents/{row} kept changing; a count is lost")


def read_stats(store: Store, row: str) -> dict[str, Any] | None:
    """A stats document, or None before the first event."""
    try:
        entity = store.table(TABLE).get_entity(_STATS, row)
    except ResourceNotFoundError:
        return None
    document = json.loads(decode_data(entity))
    return document if isinstance(document, dict) else None


def add_counts(document: dict[str, Any], counts: Mapping[str, int]) -> None:
    """Add `counts` to the document's `counts`."""
    total = document.setdefault("counts", {})
    for name, value in counts.items():
        total[name] = int(total.get(name, 0)) + int(value)


def keep_last(document: dict[str, Any], member: str, entry: Any, limit: int) -> None:
    """Put `entry` first in the document's list `member`, keeping `limit` entries."""
    document[member] = [entry, *document.get(member, [])][:limit]


# -- pending keys and last reads ------------------------------------------------------------------


def add_pending(store: Store, key: str, received_at: datetime) -> None:
    """Record that `key` waits for a refresh (the earliest waiting message's time is kept)."""
    table = store.table(TABLE)
    try:
        table.create_entity(
            {"PartitionKey": _PENDING, "RowKey": check_key(key), "received_at": received_at}
        )
    except ResourceExistsError:
        # Touch it, so a refresh that read it before this message does not drop it.
        table.update_entity(
            {"PartitionKey": _PENDING, "RowKey": key, "touched_at": received_at},
            mode=UpdateMode.MERGE,
        )


def pending_keys(store: Store, limit: int) -> list[PendingKey]:
    """The keys waiting for a refresh, the longest waiting first, at most `limit`."""
    rows = store.table(TABLE).query_entities("PartitionKey eq @pk", parameters={"pk": _PENDING})
    found = [
        PendingKey(str(r["RowKey"]), _utc(r["received_at"]), str(r.metadata["etag"])) for r in rows
    ]
    return sorted(found, key=lambda p: (p.received_at, p.key))[:limit]


def drop_pending(store: Store, keys: Iterable[PendingKey]) -> int:
    """Drop the keys a refresh answered, unless a message touched them since it read them;
    how many were dropped."""
    keys = list(keys)
    if not keys:
        return 0
    table = store.table(TABLE)
    dropped = 0
    for pending in keys:
        try:
            table.delete_entity(
                _PENDING,
                pending.key,
                etag=pending.etag,
                match_condition=MatchConditions.IfNotModified,
            )
            dropped += 1
        except (ResourceModifiedError, ResourceNotFoundError):
            pass  # touched since: its message asks again (or someone else dropped it)
    return dropped


def answer_pending(store: Store, read_from: datetime) -> int:
    """A full sync whose read began at `read_from` answered every key a message asked for
    before then: mark them read then and drop them (a key touched since stays); how many."""
    rows = store.existing_rows(TABLE, "PartitionKey eq @pk", pk=_PENDING)
    answered = [
        PendingKey(str(r["RowKey"]), _utc(r["received_at"]), str(r.metadata["etag"]))
        for r in rows
        if max(_utc(r["received_at"]), _utc(r.get("touched_at") or r["received_at"])) < read_from
    ]
    mark_refreshed(store, [p.key for p in answered], read_from)
    return drop_pending(store, answered)


def mark_refreshed(store: Store, keys: Iterable[str], read_at: datetime) -> None:
    """Record that a refresh read these keys from HaloPSA at `read_at`."""
    keys = list(keys)
    if not keys:
        return  # nothing to write: no table to create
    table = store.table(TABLE)
    for key in keys:
        table.upsert_entity(
            {"PartitionKey": _REFRESHED, "RowKey": check_key(key), "read_at": read_at},
            mode=UpdateMode.REPLACE,
        )


def refreshed_at(store: Store, key: str) -> datetime | None:
    """When a refresh last read `key` from HaloPSA, if ever."""
    try:
        entity = store.table(TABLE).get_entity(_REFRESHED, check_key(key))
    except ResourceNotFoundError:
        return None
    return _utc(entity["read_at"])


# -- what refreshes spent -------------------------------------------------------------------------


def spent(document: Mapping[str, Any] | None, window: str) -> int:
    """The HaloPSA requests refreshes spent in `window` (the current data's sync time), as the
    refresh stats document records them."""
    found = (document or {}).get("spend") or {}
    return int(found.get("requests", 0)) if found.get("window") == window else 0


def add_spend(document: dict[str, Any], window: str, requests: int) -> None:
    """Add a refresh's HaloPSA requests to `window`'s (a new window starts from nothing)."""
    document["spend"] = {"window": window, "requests": spent(document, window) + requests}
