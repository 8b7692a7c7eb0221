"""Bulk writes to Table Storage: entities per partition in transactions of at most 100 entities
and 3.5 MB, sent concurrently, each retried on its own (upserts are idempotent).
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError
from azure.data.tables import TableClient

from shared.store.base import MAX_BATCH_BYTES, MAX_BATCH_ENTITIES, StoreError, TableStore, check_key
from shared.store.batch import submit_upserts


@dataclass(slots=True)
class WriteStats:
    """What a bulk write cost."""

    entities: int = 0
    transactions: int = 0
    retries: int = 0
    partitions: int = 0
    minimum_transactions: int = 0
    # The largest entity and string property written, in bytes as the service counts them (UTF-16
    # strings), against the 1 MiB entity and 64 KiB property limits.
    largest_entity: int = 0
    largest_property: int = 0


@dataclass(slots=True)
class _Batch:
    partition: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


class BatchWriter(TableStore):
    """Bulk upserts per partition, on top of the table clients."""

    def write_partitions(
        self, table: TableClient, partitions: Mapping[str, Iterable[Mapping[str, Any]]]
    ) -> WriteStats:
        """Upsert per partition in transactions of at most 100 entities and 3.5 MB, concurrently."""
        batches = list(self._batches(partitions))
        sizes = Counter(b.partition for b in batches for _ in b.entities)
        measured = [entity_sizes(e) for b in batches for e in b.entities]
        stats = WriteStats(
            partitions=len(sizes),
            # What the 100-entity limit alone forces; the byte limit may add a few.
            minimum_transactions=sum(-(-n // MAX_BATCH_ENTITIES) for n in sizes.values()),
            largest_entity=max((m[0] for m in measured), default=0),
            largest_property=max((m[1] for m in measured), default=0),
        )
        lock = threading.Lock()

        def send(sequence: int, batch: _Batch) -> None:
            retries = self._submit(table, batch, sequence)
            with lock:
                stats.transactions += 1
                stats.entities += len(batch.entities)
                stats.retries += retries

        with ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="tables") as pool:
            futures = [pool.submit(send, n, b) for n, b in enumerate(batches)]
            errors = [f.exception() for f in futures]
        failed = [e for e in errors if e is not None]
        if failed:
            raise StoreError(
                f"{len(failed)} of {len(batches)} transactions to {table.table_name} failed; "
                f"first: {failed[0]}"
            ) from failed[0]
        return stats

    def _batches(self, partitions: Mapping[str, Iterable[Mapping[str, Any]]]) -> Iterator[_Batch]:
        for partition, entities in partitions.items():
            check_key(partition)
            batch = _Batch(partition)
            for source in entities:
                entity = {**source, "PartitionKey": partition}
                check_key(str(entity["RowKey"]))
                size = _entity_size(entity)
                full = len(batch.entities) >= MAX_BATCH_ENTITIES
                if batch.entities and (full or batch.size + size > MAX_BATCH_BYTES):
                    yield batch
                    batch = _Batch(partition)
                batch.entities.append(entity)
                batch.size += size
            if batch.entities:
                yield batch

    def _submit(self, table: TableClient, batch: _Batch, sequence: int) -> int:
        """Send one transaction; upserts are idempotent, so a failed one is simply sent again."""
        for attempt in range(1, self._attempts + 1):
            try:
                if self._hook is not None:
                    self._hook(batch.partition, sequence)
                submit_upserts(table, batch.partition, batch.entities)
                return attempt - 1
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                status = getattr(error, "status_code", None)
                retryable = status is None or status in (408, 429) or status >= 500
                if not retryable or attempt == self._attempts:
                    raise StoreError(
                        f"transaction {sequence} on partition {batch.partition!r}: "
                        f"{type(error).__name__} {status or ''} after {attempt} attempts".strip()
                    ) from None
                time.sleep(min(2.0, 0.1 * 2**attempt) * (0.5 + random.random() / 2))  # noqa: S311
        raise AssertionError("unreachable")


def entity_sizes(entity: Mapping[str, Any]) -> tuple[int, int]:
    """An entity's size and its largest string or binary property's, in bytes (strings count as
    UTF-16)."""
    strings = [
        len(v.encode("utf-16-le")) if isinstance(v, str) else len(v)
        for v in entity.values()
        if isinstance(v, str | bytes)
    ]
    return _entity_size(entity), max(strings, default=0)


def _entity_size(entity: Mapping[str, Any]) -> int:
    size = 0
    for key, value in entity.items():
        if isinstance(value, str):
            size += 2 * len(key) + 2 * len(value)
        elif isinstance(value, bytes):
            size += 2 * len(key) + len(value)
        else:
            size += 2 * len(key) + 16
    return size
