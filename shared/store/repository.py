"""Table Storage repository: every table the app uses, and their keys, live here.

Layout (all names carry the store's optional prefix, which tests use to share one Azurite):
- `SyncState` and `SyncRuns`: see `shared.store.state` (the pointer, held generation, lease, runs).
- `Rules`: PartitionKey `rule`; RowKey the normalised software name.
- `snap<generation>`: one table per snapshot generation. PartitionKey is the record kind
  (`clients`, `sites`, `contracts`, `invoices`, `items`, `targets|<software>`, `meta`); RowKey starts
  with the zero-padded client id, so one client's records are a single range read.
  `shared.store.generations` has the layout as it is written now.

A generation is its own table, not a key prefix in a shared one: dropping an old generation is one
`delete_table` call instead of a scan and thousands of deletes, and a half-written generation is
invisible until the pointer names it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableTransactionError, UpdateMode

from shared.settings import Settings
from shared.store.base import (
    MAX_BATCH_ENTITIES,
    MAX_DOCUMENT_CHARS,
    MAX_ENTITY_CHARS,
    SNAPSHOT_PREFIX,
    EntityTooLarge,
    StoreConflict,
    StoreError,
    check_key,
    decode_data,
    encode_data,
)
from shared.store.batch import submit_deletes, submit_upserts
from shared.store.service import table_service
from shared.store.state import SyncStateStore
from shared.store.writes import BatchWriter, WriteStats

log = logging.getLogger("halo_immy.store")


def new_generation(now: datetime) -> str:
    """A sortable, table-name-safe generation id: UTC time plus randomness."""
    return now.astimezone(UTC).strftime("%Y%m%d%H%M%S") + secrets.token_hex(3)


class Store(BatchWriter, SyncStateStore):
    """The app's Table Storage. Build once per process with `from_settings` (or a test's service)."""

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> Store:
        """A store over the configured account (`shared.store.service`: one pooled transport)."""
        kwargs.setdefault("prefix", settings.tables_prefix)
        return cls(table_service(settings), **kwargs)

    def _snapshot_table(self, generation: str, *, create: bool = False) -> TableClient:
        if not generation.isalnum():
            raise ValueError("a generation id is alphanumeric")
        return self.table(SNAPSHOT_PREFIX + generation, create=create)

    def generations(self) -> list[str]:
        """Every snapshot generation stored, oldest first."""
        head = self.prefix + SNAPSHOT_PREFIX
        found = [
            t.name[len(head) :]
            for t in self.service.query_tables(
                "TableName ge @lo and TableName lt @hi", parameters={"lo": head, "hi": head + "~"}
            )
        ]
        return sorted(g for g in found if g.isalnum())

    def delete_generation(self, generation: str) -> None:
        """Drop a whole generation (one table delete)."""
        name = self.prefix + SNAPSHOT_PREFIX + generation
        self.service.delete_table(name)
        self.note_write()
        self._ready.discard(name)
        self._clients.pop(name, None)

    # -- bulk writes ---------------------------------------------------------------------------

    def write_generation(
        self, generation: str, partitions: Mapping[str, Iterable[Mapping[str, Any]]]
    ) -> WriteStats:
        """Upsert entities (`RowKey` plus properties) into each partition of a generation."""
        table = self._snapshot_table(generation, create=True)
        return self.write_partitions(table, partitions)

    # -- snapshot reads --------------------------------------------------------------------------

    def read_partition(
        self, generation: str, partition: str, *, row_prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """Every entity of a generation's partition, optionally only RowKeys with a prefix."""
        table = self._snapshot_table(generation)
        params: dict[str, Any] = {"pk": check_key(partition)}
        query = "PartitionKey eq @pk"
        if row_prefix:
            query += " and RowKey ge @lo and RowKey lt @hi"
            params |= {"lo": row_prefix, "hi": row_prefix + "\uffff"}
        try:
            return [dict(e) for e in table.query_entities(query, parameters=params)]
        except ResourceNotFoundError:
            raise StoreError(f"generation {generation} is not stored") from None

    def read_partitions(self, generation: str, first: str, last: str) -> list[dict[str, Any]]:
        """Every entity of a generation's partitions from `first` to `last` (inclusive), in
        PartitionKey and RowKey order, one range query."""
        table = self._snapshot_table(generation)
        params = {"first": check_key(first), "last": check_key(last)}
        query = "PartitionKey ge @first and PartitionKey le @last"
        try:
            return [dict(e) for e in table.query_entities(query, parameters=params)]
        except ResourceNotFoundError:
            raise StoreError(f"generation {generation} is not stored") from None

    def read_documents(
        self, generation: str, partition: str, *, row_prefix: str | None = None
    ) -> list[Any]:
        """The JSON documents of a partition, in RowKey order."""
        return [
            json.loads(decode_data(e))
            for e in self.read_partition(generation, partition, row_prefix=row_prefix)
        ]

    def read_document(self, generation: str, partition: str, row: str) -> tuple[Any, str]:
        """One JSON document of a generation (over one or more rows) and its version token.

        The token is opaque: pass it to `replace_document` for an optimistic update, or use it as a
        cache key (it changes whenever the document does). StoreError if the document is missing.
        """
        table = self._snapshot_table(generation)
        params = {"pk": check_key(partition), "lo": check_key(row), "hi": row + "|\uffff"}
        query = "PartitionKey eq @pk and RowKey ge @lo and RowKey le @hi"
        for _ in range(3):
            try:
                found = [
                    e
                    for e in table.query_entities(query, parameters=params)
                    if e["RowKey"] == row or str(e["RowKey"]).startswith(row + "|")
                ]
            except ResourceNotFoundError:
                raise StoreError(f"generation {generation} is not stored") from None
            if not found:
                raise StoreError(f"generation {generation} has no {partition}/{row}")
            parts = int(found[0].get("parts", 1))
            # A reader racing a multi-row replace may see rows of two versions: read again.
            if len(found) == parts and len({e.get("v") for e in found}) == 1:
                payload = "".join(decode_data(e) for e in found)
                token = json.dumps(
                    {str(e["RowKey"]): str(e.metadata["etag"]) for e in found}, sort_keys=True
                )
                return json.loads(payload), token
        raise StoreError(f"{partition}/{row} kept changing while being read")

    def replace_document(
        self, generation: str, partition: str, row: str, payload: str, etag: str
    ) -> str:
        """Replace a document if unchanged since `etag` (its token) was read, else StoreConflict;
        returns the new document's token, as `read_document` would give it.

        All of the document's rows change in one transaction, so readers see the old or the new
        document, never a mix.
        """
        old: dict[str, str] = json.loads(etag)
        operations: list[Any] = []
        new = document_entities(row, payload)
        for source in new:
            entity = {"PartitionKey": partition, **source}
            previous = old.get(entity["RowKey"])
            if previous is None:
                operations.append(("create", entity))
            else:
                conditions = {"etag": previous, "match_condition": MatchConditions.IfNotModified}
                operations.append(("update", entity, {"mode": UpdateMode.REPLACE, **conditions}))
        kept = {e["RowKey"] for e in new}
        for key, previous in old.items():
            if key not in kept:
                conditions = {"etag": previous, "match_condition": MatchConditions.IfNotModified}
                operations.append(
                    ("delete", {"PartitionKey": partition, "RowKey": key}, conditions)
                )
        try:
            answers = self._snapshot_table(generation).submit_transaction(operations)
        except (TableTransactionError, ResourceModifiedError, ResourceExistsError) as error:
            if getattr(error, "status_code", None) in (409, 412) or not isinstance(
                error, TableTransactionError
            ):
                raise StoreConflict(f"{partition}/{row} changed concurrently") from None
            raise
        finally:
            # Even a failed transaction may have been applied (a lost answer): count it.
            self.note_write()
        # The answers come in the operations' order, the new rows' first. Without an ETag for
        # each (not what the service promises) the token is "", which no read gives: a caller
        # keying a cache on it only misses.
        etags = {str(e["RowKey"]): a.get("etag") for e, a in zip(new, answers, strict=False)}
        if len(etags) != len(new) or not all(etags.values()):
            return ""
        return json.dumps({k: str(v) for k, v in etags.items()}, sort_keys=True)

    def delete_rows(self, generation: str, partition: str, rows: Sequence[str]) -> None:
        """Delete the named rows of one partition of a generation."""
        table = self._snapshot_table(generation)
        for start in range(0, len(rows), MAX_BATCH_ENTITIES):
            submit_deletes(table, partition, rows[start : start + MAX_BATCH_ENTITIES])

    def delete_partition(self, generation: str, partition: str) -> int:
        """Delete every entity of one partition of a generation; returns how many."""
        return self.delete_partitions(generation, [partition])

    def delete_partitions(self, generation: str, partitions: Iterable[str]) -> int:
        """Delete every entity of the named partitions of a generation; returns how many.

        The rows are found by one key-only range read per kind of partition (the part of the
        name before the first `|`), not one read per partition: a rule set replaced whole drops
        hundreds, most of them empty. Rows of other partitions in the range are read, not deleted.
        """
        table = self._snapshot_table(generation)
        by_kind: dict[str, list[str]] = {}
        for partition in partitions:
            by_kind.setdefault(check_key(partition).split("|", 1)[0], []).append(partition)
        found: dict[str, list[str]] = {}
        for names in by_kind.values():
            wanted = set(names)
            rows = table.query_entities(
                "PartitionKey ge @first and PartitionKey le @last",
                parameters={"first": min(names), "last": max(names)},
                select=["PartitionKey", "RowKey"],
            )
            for row in rows:
                if row["PartitionKey"] in wanted:
                    found.setdefault(row["PartitionKey"], []).append(row["RowKey"])
        for partition, keys in found.items():
            self.delete_rows(generation, partition, keys)
        return sum(len(keys) for keys in found.values())

    # -- ticket -> client memory (lets the tab render coverage while HaloPSA is down) -------------

    def remember_ticket_clients(self, memos: Sequence[tuple[int, int, datetime]]) -> int:
        """Record which client each ticket belongs to, `(ticket id, client id, seen at)`: one
        transaction per 100 (one partition); returns the transactions sent."""
        table = self.table("TicketClients")
        sent = 0
        for start in range(0, len(memos), MAX_BATCH_ENTITIES):
            rows = [
                {"RowKey": str(ticket), "client_id": client, "seen_at": seen_at}
                for ticket, client, seen_at in memos[start : start + MAX_BATCH_ENTITIES]
            ]
            submit_upserts(table, "ticket", rows)
            sent += 1
        return sent

    def ticket_client(self, ticket_id: int) -> int | None:
        """The client a ticket was last seen with, if any."""
        try:
            entity = self.table("TicketClients").get_entity("ticket", str(ticket_id))
        except ResourceNotFoundError:
            return None
        return int(entity["client_id"])

    # -- explicit client -> tenant mappings -------------------------------------------------------

    def mapping_rows(self) -> list[dict[str, Any]]:
        """Every explicit mapping as stored: halo_client_id, immy_tenant_id, note."""
        entities = self.table("Mappings").query_entities(
            "PartitionKey eq @pk", parameters={"pk": "map"}
        )
        return [
            {
                "halo_client_id": int(e["RowKey"]),
                "immy_tenant_id": int(e["immy_tenant_id"]),
                "note": e.get("note", ""),
            }
            for e in entities
        ]

    def put_mapping_row(self, halo_client_id: int, immy_tenant_id: int, note: str) -> None:
        """Create or replace the explicit mapping of one client."""
        self.table("Mappings").upsert_entity(
            {
                "PartitionKey": "map",
                "RowKey": str(halo_client_id),
                "immy_tenant_id": immy_tenant_id,
                "note": note,
            },
            mode=UpdateMode.REPLACE,
        )

    def delete_mapping_row(self, halo_client_id: int) -> bool:
        """Delete one client's explicit mapping; False if there was none."""
        table = self.table("Mappings")
        try:
            table.get_entity("map", str(halo_client_id))
        except ResourceNotFoundError:
            return False
        table.delete_entity("map", str(halo_client_id))
        return True

    # -- rules -------------------------------------------------------------------------------------

    def rule_documents(self) -> list[Any]:
        """Every stored rule as its JSON document."""
        entities = self.existing_rows("Rules", "PartitionKey eq @pk", pk="rule")
        return [json.loads(decode_data(e)) for e in entities]

    def put_rule_document(self, key: str, document: Any) -> None:
        """Create or replace one rule."""
        self.put_rule_documents({key: document})

    def put_rule_documents(self, documents: Mapping[str, Any]) -> None:
        """Create or replace rules by key, a transaction per 100 (all of a rule set fits one
        transaction's 4 MiB: the rules' size is capped far below it by the manifest's)."""
        entities = [
            {"RowKey": check_key(key), **encode_data(json.dumps(document))}
            for key, document in documents.items()
        ]
        table = self.table("Rules")
        for start in range(0, len(entities), MAX_BATCH_ENTITIES):
            # Replaced, not merged: a rule stored over several properties leaves none behind.
            submit_upserts(
                table, "rule", entities[start : start + MAX_BATCH_ENTITIES], replace=True
            )

    def delete_rules(self, keys: Sequence[str]) -> None:
        """Delete stored rules, a transaction per 100; one deleted meanwhile is no failure."""
        table = self.table("Rules")
        for start in range(0, len(keys), MAX_BATCH_ENTITIES):
            chunk = [check_key(key) for key in keys[start : start + MAX_BATCH_ENTITIES]]
            try:
                submit_deletes(table, "rule", chunk)
            except HttpResponseError as error:
                if error.status_code != 404:
                    raise
                # A row of the transaction was gone, so none was deleted: one at a time.
                for key in chunk:
                    self.delete_rule(key)

    def delete_rule(self, key: str) -> bool:
        """Delete one rule; False if there was none."""
        table = self.table("Rules")
        try:
            table.get_entity("rule", check_key(key))
        except ResourceNotFoundError:
            return False
        table.delete_entity("rule", key)
        return True


def documents_to_entities(rows: Sequence[tuple[str, Any]]) -> list[dict[str, Any]]:
    """(RowKey, JSON-able document) pairs as entities; raises EntityTooLarge for a huge one."""
    return [
        {"RowKey": row, **encode_data(json.dumps(doc, separators=(",", ":")))} for row, doc in rows
    ]


def document_entities(row: str, payload: str) -> list[dict[str, Any]]:
    """A JSON document as one or more entities (`row`, `row|001`, ...) of at most 1 MiB each.

    The rows are read back together by `Store.read_document` and replaced in one transaction by
    `Store.replace_document`, so a document may outgrow one entity (a manifest with many rules, a
    large catalogue) up to MAX_DOCUMENT_CHARS; EntityTooLarge beyond that.
    """
    check_key(row)
    if len(payload) > MAX_DOCUMENT_CHARS:
        raise EntityTooLarge(
            f"{len(payload)} characters, over the {MAX_DOCUMENT_CHARS} a document holds"
        )
    pieces = [payload[i : i + MAX_ENTITY_CHARS] for i in range(0, len(payload), MAX_ENTITY_CHARS)]
    pieces = pieces or [""]
    version = hashlib.sha256(payload.encode()).hexdigest()[:16]
    return [
        {
            "RowKey": row if n == 0 else f"{row}|{n:03d}",
            "parts": len(pieces),
            "v": version,
            **encode_data(piece),
        }
        for n, piece in enumerate(pieces)
    ]
