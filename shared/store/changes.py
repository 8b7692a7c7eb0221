"""The change log in Table Storage: one entity per change, partitions per day.

Table `Changes` (with the store's prefix):
- PartitionKey: `<day>-<publish>-<chunk>`. The day is the UTC day of the publish, inverted
  (`99999999 - YYYYMMDD`: 2026-12-06 is `79738793`), so a range query over days reads the newest
  day first, and retention drops whole days (every partition starting with the day's key). The
  publish is `<10**13 - epoch milliseconds, 13 digits>-<generation>`, newest first within a day,
  and the chunk (5 digits) numbers a publish's changes in hundreds, in the order the diff lists
  them: a partition holds at most one transaction's 100 rows.
- RowKey: `<10**13 - epoch milliseconds, 13 digits>-<generation>-<sequence, 7 digits>`: newest
  first, a publish's changes in the order the diff lists them, and two publishes never share a
  key (each publishes its own generation).
- Properties: `at`, `rule` (the rule key), `software`, `client_id`, `client_name`,
  `immy_tenant_id` (absent when none), `change`, `before` and `after` (JSON lists of reason
  summaries, bounded by shared.core.changes), `cause_kind`, `cause_id`, `generation`.

An entity holds one change of one client, so nothing grows with the number of clients or rules: a
publish that changes many targets writes many small entities, in transactions of 100.

Why not one partition per day: a partition takes upserts one after another, each looking its row
up among the partition's rows (Azurite scans them: the first publish of 5,000 clients, about 4,600
changes, cost it 3 s of CPU in one partition against 0.5 s in partitions of 100; Table Storage
serves a partition at about 2,000 entities a second). A day's key (`79738793`) still bounds all its
partitions: every one sorts after it and before `79738793~`.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import EdmType
from pydantic import ValidationError

from shared.core.changes import Cause, Change
from shared.core.rules import normalise
from shared.store.base import MAX_BATCH_ENTITIES, _utc
from shared.store.repository import Store
from shared.store.writes import WriteStats

log = logging.getLogger("halo_immy.store")

TABLE = "Changes"
_INT32 = 2**31 - 1
_PAGE = 1000
# Sorts after every character of a key below the day's (digits, `-`): `<day key>~` bounds a day.
_DAY_END = "~"


def day_key(day: date) -> str:
    """The PartitionKey of a day: later days sort first."""
    return f"{99_999_999 - int(day.strftime('%Y%m%d')):08d}"


def row_key(at: datetime, generation: str, sequence: int) -> str:
    """The RowKey of a publish's `sequence`th change: later publishes sort first."""
    return f"{_publish_key(at, generation)}-{sequence:07d}"


def partition_key(at: datetime, generation: str, sequence: int) -> str:
    """The PartitionKey of a publish's `sequence`th change: its day, the publish (later ones
    first), and its hundred in the publish's order."""
    day = day_key(_utc(at).date())
    return f"{day}-{_publish_key(at, generation)}-{sequence // MAX_BATCH_ENTITIES:05d}"


def _publish_key(at: datetime, generation: str) -> str:
    millis = int(_utc(at).timestamp() * 1000)
    return f"{10**13 - millis:013d}-{generation}"


def write_changes(store: Store, changes: Sequence[Change]) -> WriteStats:
    """Store one publish's changes (all of one generation), a transaction per hundred."""
    partitions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for sequence, change in enumerate(changes):
        key = partition_key(change.at, change.generation, sequence)
        partitions[key].append(_entity(change, sequence))
    if not partitions:
        return WriteStats()
    return store.write_partitions(store.table(TABLE), partitions)


def iter_changes(store: Store, since: datetime, *, rule: str | None = None) -> Iterator[Change]:
    """The changes from `since` on, newest first; only one rule's with `rule` (its key)."""
    query = "PartitionKey lt @oldest"
    params: dict[str, Any] = {"oldest": day_key(_utc(since).date()) + _DAY_END}
    if rule is not None:
        query += " and rule eq @rule"
        params["rule"] = rule
    try:
        entities = store.table(TABLE, create=False).query_entities(
            query, parameters=params, results_per_page=_PAGE
        )
        for entity in entities:
            change = _change(entity)
            if change is None:
                continue
            if change.at < since:
                return  # newest first: everything after this is older still
            yield change
    except ResourceNotFoundError:
        return  # no publish has recorded a change yet


def prune_changes(store: Store, keep_from: date) -> int:
    """Delete every change of the days before `keep_from`; returns how many."""
    table = store.table(TABLE, create=False)
    rows: dict[str, list[str]] = defaultdict(list)
    try:
        for entity in table.query_entities(
            "PartitionKey gt @newest",
            parameters={"newest": day_key(keep_from) + _DAY_END},
            select=["PartitionKey", "RowKey"],
            results_per_page=_PAGE,
        ):
            rows[str(entity["PartitionKey"])].append(str(entity["RowKey"]))
    except ResourceNotFoundError:
        return 0
    for partition, keys in rows.items():
        for start in range(0, len(keys), MAX_BATCH_ENTITIES):
            chunk = keys[start : start + MAX_BATCH_ENTITIES]
            table.submit_transaction(
                [("delete", {"PartitionKey": partition, "RowKey": k}) for k in chunk]
            )
    return sum(len(keys) for keys in rows.values())


def _entity(change: Change, sequence: int) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "RowKey": row_key(change.at, change.generation, sequence),
        "at": change.at,
        "rule": normalise(change.software),
        "software": change.software,
        "client_id": _int(change.client_id),
        "client_name": change.client_name,
        "change": change.change,
        "before": json.dumps(change.before, ensure_ascii=False),
        "after": json.dumps(change.after, ensure_ascii=False),
        "cause_kind": change.cause.kind,
        "cause_id": change.cause.id,
        "generation": change.generation,
    }
    if change.immy_tenant_id is not None:
        entity["immy_tenant_id"] = _int(change.immy_tenant_id)
    return entity


def _int(value: int) -> Any:
    # Table Storage's plain integer is 32 bits; a larger id must say it is 64.
    return value if -_INT32 - 1 <= value <= _INT32 else (value, EdmType.INT64)


def _number(value: Any) -> int:
    # A 64-bit integer reads back as an EntityProperty holding it.
    return int(getattr(value, "value", value))


def _change(entity: Mapping[str, Any]) -> Change | None:
    """A stored change, or None for an entity that is not one (logged, never fatal to a read)."""
    tenant = entity.get("immy_tenant_id")
    try:
        return Change(
            at=_utc(entity["at"]),
            software=entity["software"],
            client_id=_number(entity["client_id"]),
            client_name=entity["client_name"],
            immy_tenant_id=None if tenant is None else _number(tenant),
            change=entity["change"],
            before=json.loads(entity["before"]),
            after=json.loads(entity["after"]),
            cause=Cause(kind=entity["cause_kind"], id=entity["cause_id"]),
            generation=entity["generation"],
        )
    except (KeyError, TypeError, ValueError, ValidationError) as error:
        log.warning("change log entity %s is unreadable: %s", entity.get("RowKey"), error)
        return None
