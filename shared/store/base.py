"""The ground floor of the Table Storage repository: limits, keys, JSON chunking, table clients.

`shared.store.repository.Store` is built on `TableStore` (tables) and `shared.store.state.SyncStateStore`
(pointer, held generation, lease, run records); this module has no app knowledge.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableEntity, TableServiceClient

from shared.store.read_cache import writes_here

MAX_BATCH_ENTITIES = 100
# The service's limit is 4 MiB per transaction; stay clear of it, counting strings as UTF-16.
MAX_BATCH_BYTES = 3_500_000
# A string property may hold 64 KiB of UTF-16, i.e. 32,768 characters.
CHUNK_CHARS = 30_000
# An entity may hold 1 MiB; leave room for keys, property names and the other properties.
MAX_ENTITY_CHARS = 15 * CHUNK_CHARS
# A document over several entities is replaced in one transaction: stay inside its 4 MiB.
MAX_DOCUMENT_CHARS = 3 * MAX_ENTITY_CHARS
_FORBIDDEN_KEY = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")

STATE_PK = "sync"
SNAPSHOT_PREFIX = "snap"


class StoreError(RuntimeError):
    """A storage operation failed after its retries; the message is safe to log."""


class StoreConflict(StoreError):
    """An ETag-conditioned write lost to a concurrent change; re-read and try again."""


class EntityTooLarge(ValueError):
    """A record is larger than one table entity may hold, even split into chunks."""


def check_key(key: str) -> str:
    """Return `key` if Table Storage accepts it as a PartitionKey/RowKey, else raise ValueError."""
    if not key or len(key) > 512 or _FORBIDDEN_KEY.search(key):
        raise ValueError("a table key must be 1-512 characters without / \\ # ? or controls")
    return key


def client_key(client_id: int, record_id: int | None = None) -> str:
    """RowKey of a client's record: sorts and range-reads by client."""
    head = f"{client_id:010d}"
    return head if record_id is None else f"{head}-{record_id:010d}"


def encode_data(payload: str) -> dict[str, Any]:
    """Spread a JSON document over as many string properties as the 64 KiB limit needs."""
    if len(payload) > MAX_ENTITY_CHARS:
        raise EntityTooLarge(
            f"{len(payload)} characters, over the {MAX_ENTITY_CHARS} an entity holds"
        )
    if len(payload) <= CHUNK_CHARS:
        return {"d": payload}
    chunks = [payload[i : i + CHUNK_CHARS] for i in range(0, len(payload), CHUNK_CHARS)]
    return {"n": len(chunks), **{f"d{i}": chunk for i, chunk in enumerate(chunks)}}


def decode_data(entity: Mapping[str, Any]) -> str:
    """The JSON document `encode_data` spread over an entity."""
    if "d" in entity:
        return str(entity["d"])
    return "".join(str(entity[f"d{i}"]) for i in range(int(entity["n"])))


TransactionHook = Callable[[str, int], None]


class TableStore:
    """Table clients under one optional name prefix, each table created on first use."""

    def __init__(
        self,
        service: TableServiceClient,
        *,
        prefix: str = "",
        concurrency: int = 8,
        attempts: int = 4,
        transaction_hook: TransactionHook | None = None,
    ) -> None:
        if prefix and not prefix.isalnum():
            raise ValueError("the table prefix must be alphanumeric")
        self.service = service
        self.prefix = prefix
        self._concurrency = concurrency
        self._attempts = attempts
        # A seam for fault tests: called before each transaction with (partition, sequence).
        self._hook = transaction_hook
        self._ready: set[str] = set()
        # Table clients by full name: each wraps the service's one transport, so keeping them
        # saves only their construction, but that is per call on the read path.
        self._clients: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """Which account and tables this store reads: a cache key, not a secret."""
        return f"{self.service.url}|{self.prefix}"

    def note_write(self) -> None:
        """Record that this process changed something read caches hold (see `local_writes`)."""
        writes_here.note(self.identity)

    @property
    def local_writes(self) -> int:
        """How many such changes this process made to this store's tables: a cache entry taken
        at another count may be stale."""
        return writes_here.count(self.identity)

    # -- tables --------------------------------------------------------------------------------

    def table(self, name: str, *, create: bool = True) -> TableClient:
        """A client for `name` (prefixed), creating the table on first use."""
        full = self.prefix + name
        if create and full not in self._ready:
            with self._lock:
                if full not in self._ready:
                    try:
                        self.service.create_table(full)
                    except ResourceExistsError:
                        pass
                    self._ready.add(full)
        client = self._clients.get(full)
        if client is None:
            client = self._clients.setdefault(full, self.service.get_table_client(full))
        return client

    def existing_row(self, name: str, partition: str, row: str) -> TableEntity | None:
        """One row of table `name`, or None where it or the table does not exist: a read
        creates no table (a write to it does)."""
        try:
            return self.table(name, create=False).get_entity(partition, row)
        except ResourceNotFoundError:
            return None

    def existing_rows(self, name: str, query: str, **parameters: str) -> list[TableEntity]:
        """The rows of table `name` that `query` matches; none where the table does not exist
        yet: a read creates no table (a write to it does)."""
        try:
            return list(self.table(name, create=False).query_entities(query, parameters=parameters))
        except ResourceNotFoundError:
            return []


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
