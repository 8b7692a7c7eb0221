"""Staged HaloPSA pages: what a run has read is kept, so a run that stops part-way is continued.

A REST read of a large HaloPSA instance takes longer at the request budget than one run may last
(host.json's functionTimeout). Every page (and every recurring invoice read by id) a run reads is
written, as HaloPSA sent it, to the partition `stage` of the run's generation table; the
`SyncState/stage` row names that generation and what the pages depend on (page size, read mode,
format) and when staging began. The next run continues the same generation: pages found staged are
not requested again.

Bounded and cleaned: the stage lives in its generation's table, so it goes when the generation is
dropped; a run whose generation becomes current or held deletes the partition; a stage from a
different page size, read mode or format, or older than STAGE_MAX_AGE, is discarded (with its
generation, unless that one serves) and the run starts over, saying so in its record. A page is
split over as many properties and rows as it needs (`page_entities`), so a page of any size up to
`MAX_STAGED_BYTES` compressed stays inside the 1 MiB entity and 64 KiB property limits.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import zlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.base import STATE_PK, EntityTooLarge, StoreError, check_key
from shared.store.repository import Store, new_generation
from shared.store.sharing import in_use

log = logging.getLogger("halo_immy.sync")

STAGE_PARTITION = "stage"
STAGE_ROW = "stage"
# A resumed run serves data as old as its oldest staged page: past this, start over.
STAGE_MAX_AGE = timedelta(hours=24)
# Bump when what a staged page holds changes: a stage of another format is discarded, not read.
# 3: each answer's JSON as HaloPSA sent it, zlib-compressed in binary properties (1 was the
# records and record_count re-serialised, as text); since 2 client pages carry `azure_tenants`
# (listed with includeazuretenants=true): a page staged before would give its clients no Entra
# tenant for a whole generation.
STAGE_FORMAT = 3
# A binary property holds 64 KiB; an entity 1 MiB, so 15 such properties leave room for the rest.
_CHUNK_BYTES = 60_000
_CHUNKS_PER_ROW = 15
MAX_STAGED_BYTES = 3 * _CHUNKS_PER_ROW * _CHUNK_BYTES
# Speed over ratio: the pages are written once and read back only by a resumed run.
_LEVEL = 1


def page_entities(key: str, payload: bytes) -> list[dict[str, Any]]:
    """One staged answer (its JSON) compressed into rows `key`, `key|001`, ... of binary chunks
    (`z0`, `z1`, ...). Each row carries the number of rows and a version, so a page whose rows
    were not all written, or come from two writes, is told apart (`page_payload`)."""
    check_key(key)
    packed = zlib.compress(payload, _LEVEL)
    if len(packed) > MAX_STAGED_BYTES:
        raise EntityTooLarge(f"{len(packed)} compressed bytes, over the {MAX_STAGED_BYTES} staged")
    chunks = [packed[i : i + _CHUNK_BYTES] for i in range(0, len(packed), _CHUNK_BYTES)]
    rows = [chunks[i : i + _CHUNKS_PER_ROW] for i in range(0, len(chunks), _CHUNKS_PER_ROW)]
    version = hashlib.sha256(packed).hexdigest()[:16]
    return [
        {
            "RowKey": key if n == 0 else f"{key}|{n:03d}",
            "parts": len(rows),
            "v": version,
            "n": len(row),
            **{f"z{i}": chunk for i, chunk in enumerate(row)},
        }
        for n, row in enumerate(rows)
    ]


def page_payload(rows: list[dict[str, Any]]) -> bytes | None:
    """The JSON of a staged answer from its rows in RowKey order, or None when they are not one
    whole write (rows missing, or of two versions)."""
    if len(rows) != int(rows[0].get("parts", 1)) or len({r.get("v") for r in rows}) != 1:
        return None
    packed = b"".join(bytes(r[f"z{i}"]) for r in rows for i in range(int(r["n"])))
    return zlib.decompress(packed)


@dataclass(frozen=True, slots=True)
class StageInfo:
    """The `SyncState/stage` row: which generation is being staged and what its pages depend on."""

    generation: str
    created_at: datetime
    page_size: int
    read_mode: str
    format: int = STAGE_FORMAT


class RunStage:
    """One run's view of the stage: answers kept by earlier runs, and where new ones are put.

    Implements shared.halo.paging.PageStage for HaloClient. `staged` counts answers this run wrote,
    `reused` those an earlier run had read that this run did not request again.
    """

    def __init__(
        self,
        store: Store,
        info: StageInfo,
        kept: dict[str, bytes],
        *,
        resumed: bool,
        note: str | None,
    ) -> None:
        self._store = store
        self.info = info
        self._kept = kept
        self.resumed = resumed
        self.note = note
        self.available = len(kept)
        self.staged = 0
        self.reused = 0
        self.too_large = 0
        # Answers waiting to be written; one writer drains them, as many per write as have come.
        self._queue: list[tuple[str, Any]] = []
        self._writer: asyncio.Task[None] | None = None
        self._failure: StoreError | None = None

    @property
    def generation(self) -> str:
        """The generation this run writes (the staged one when resuming)."""
        return self.info.generation

    async def get(self, key: str) -> Any | None:
        """The staged answer under `key`, or None (each is handed out once, then freed)."""
        payload = self._kept.pop(key, None)
        if payload is None:
            return None
        self.reused += 1
        return json.loads(payload)

    async def put(self, key: str, value: Any) -> None:
        """Stage one answer in the background; a storage failure is raised by the next `put` or
        by `flush` (the run fails, nothing current changes).

        The read never waits for storage: the answers are held in memory by the read anyway, and
        one writer thread serialises and writes whatever has queued, so each transaction carries
        as many pages as have arrived rather than one (a write per page held a 5,000-client read
        back by seconds)."""
        self._raise_failure()
        self._queue.append((key, value))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait for every staged write still queued or in flight; raise the first storage failure."""
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})
        self._raise_failure()

    async def _drain(self) -> None:
        while self._queue and self._failure is None:
            batch, self._queue = self._queue, []
            try:
                written, too_large = await asyncio.to_thread(self._write, batch)
            except StoreError as error:
                first = batch[0][0]
                self._failure = StoreError(f"could not stage HaloPSA answer {first}: {error}")
                self._queue.clear()
                return
            self.staged += written
            self.too_large += too_large

    def _write(self, batch: list[tuple[str, Any]]) -> tuple[int, int]:
        entities: list[dict[str, Any]] = []
        written = too_large = 0
        for key, value in batch:
            # An answer as HaloPSA sent it is staged as it is; anything else as its JSON.
            payload = (
                value
                if isinstance(value, bytes)
                else json.dumps(value, separators=(",", ":")).encode()
            )
            try:
                entities.extend(page_entities(key, payload))
            except EntityTooLarge:
                # Not an error of the run: this answer is simply read again by a resumed run.
                too_large += 1
                log.warning("a HaloPSA answer of %d bytes is too large to stage", len(payload))
                continue
            written += 1
        if entities:
            self._store.write_generation(self.generation, {STAGE_PARTITION: entities})
        return written, too_large

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def record(self, now: datetime) -> dict[str, Any]:
        """What the run record says about the stage."""
        return {
            "generation": self.generation,
            "resumed": self.resumed,
            "staged": self.staged,
            "reused": self.reused,
            "age_seconds": round((now - self.info.created_at).total_seconds(), 1),
            **({"too_large": self.too_large} if self.too_large else {}),
            **({"note": self.note} if self.note else {}),
        }


def open_stage(
    store: Store,
    *,
    page_size: int,
    read_mode: str,
    now: datetime,
    max_age: timedelta = STAGE_MAX_AGE,
) -> RunStage:
    """The stage this run continues, or a new one (with a new generation) if there is none usable.

    A stage staged with another page size, read mode or format, or begun longer than `max_age`
    ago, is discarded and the run starts over; the stage's `note` says why.
    """
    info = staged(store)
    note = None
    if info is not None:
        why = _unusable(info, page_size, read_mode, now, max_age) or _serving(store, info)
        if why is not None:
            discard(store, info)
            note = f"staged pages of generation {info.generation} discarded ({why}); started over"
            log.warning(note)
            info = None
    if info is not None:
        kept = _load(store, info.generation)
        note = f"continued generation {info.generation}: {len(kept)} answers staged by earlier runs"
        return RunStage(store, info, kept, resumed=True, note=note)
    info = StageInfo(new_generation(now), now, page_size, read_mode)
    store.table("SyncState").upsert_entity(
        {
            "PartitionKey": STATE_PK,
            "RowKey": STAGE_ROW,
            "generation": info.generation,
            "created_at": info.created_at,
            "page_size": info.page_size,
            "read_mode": info.read_mode,
            "format": info.format,
        },
        mode=UpdateMode.REPLACE,
    )
    return RunStage(store, info, {}, resumed=False, note=note)


def staged(store: Store) -> StageInfo | None:
    """The stage a next run would continue, if any."""
    try:
        entity = store.table("SyncState").get_entity(STATE_PK, STAGE_ROW)
    except ResourceNotFoundError:
        return None
    created = entity["created_at"]
    return StageInfo(
        generation=str(entity["generation"]),
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        page_size=int(entity.get("page_size", 0)),
        read_mode=str(entity.get("read_mode", "")),
        format=int(entity.get("format", 0)),
    )


def close_stage(store: Store, generation: str) -> None:
    """Drop the staged pages of `generation` (now current or held) and the row naming them."""
    try:
        store.delete_partition(generation, STAGE_PARTITION)
    except (StoreError, ResourceNotFoundError):
        pass  # the table was never created (nothing staged) or is gone already
    _forget(store, generation)


def discard(store: Store, info: StageInfo) -> None:
    """Drop a stage that will not be continued: its generation too, unless that one serves (or
    holds rows a serving one shares)."""
    pointer, held = store.current(), store.held()
    kept = (pointer and pointer.generation, pointer and pointer.previous, held and held.generation)
    serving = in_use(store, (g for g in kept if g))
    if info.generation in serving:
        close_stage(store, info.generation)
        return
    if info.generation in store.generations():
        store.delete_generation(info.generation)
    _forget(store, info.generation)


def _forget(store: Store, generation: str) -> None:
    current = staged(store)
    if current is None or current.generation != generation:
        return
    try:
        store.table("SyncState").delete_entity(STATE_PK, STAGE_ROW)
    except ResourceNotFoundError:
        pass


def _unusable(
    info: StageInfo, page_size: int, read_mode: str, now: datetime, max_age: timedelta
) -> str | None:
    if info.format != STAGE_FORMAT:
        return f"staged in format {info.format}, this version reads {STAGE_FORMAT}"
    if info.page_size != page_size:
        return f"page size was {info.page_size}, now {page_size}"
    if info.read_mode != read_mode:
        return f"read mode was {info.read_mode}, now {read_mode}"
    age = now - info.created_at
    if age > max_age:
        return f"begun {age.total_seconds() / 3600:.1f} h ago, over the {max_age} bound"
    return None


def _serving(store: Store, info: StageInfo) -> str | None:
    # The run that staged it swapped (or was held) but could not drop the stage: continuing would
    # write into a generation readers use.
    pointer, held = store.current(), store.held()
    if info.generation in {pointer and pointer.generation, pointer and pointer.previous}:
        return "its generation already became current"
    if held is not None and held.generation == info.generation:
        return "its generation is held"
    return None


def _load(store: Store, generation: str) -> dict[str, bytes]:
    """Every completely staged answer of `generation`, by key, as its JSON."""
    try:
        rows = store.read_partition(generation, STAGE_PARTITION)
    except StoreError:
        return {}  # the generation's table does not exist yet: nothing was staged
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        # A document's extra rows are `<key>|001`...; keys have three parts (resource|which|n).
        parts["|".join(str(row["RowKey"]).split("|")[:3])].append(row)
    kept: dict[str, bytes] = {}
    for key, found in parts.items():
        found.sort(key=lambda e: str(e["RowKey"]))
        # A page whose rows were not all written (a run killed mid-write) is read again.
        payload = page_payload(found)
        if payload is not None:
            kept[key] = payload
    return kept
