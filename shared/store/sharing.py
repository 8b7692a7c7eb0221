"""Generations share the stored rows of what did not change: a client's records, a tenant's
computers.

Most syncs find most clients as they were: rewriting every client's rows each run cost most of a
run's time. So the rows of a *shared partition* (`SHARED`: the clients' documents and ImmyBot's
computers, both keyed by an owner id in the first 10 characters of the RowKey) are written only
for owners whose content changed; a generation's **index** (partition `index|<partition>`, owners
in buckets of 1000) names, for every owner it holds, the content hash of its rows and the
generation whose table holds them (its *home*), and the partition of that table they are in.
Unchanged owners keep their home from the generation that was current when the run wrote.

The rows a generation writes for a shared partition go into *chunks*: partitions
`<partition>|<first owner>` of whole owners, in owner order, at most `CHUNK_ROWS` rows each (one
transaction's). Why not one partition: a partition takes its upserts one after another, each
looking its row up among the partition's rows (Azurite scans them: 5,000 client rows cost it
1.7-2.5 s of CPU in one partition against 0.5-0.6 s in 50, measured; Table Storage serves one
partition at about 2,000 entities a second). A generation written before chunks has its rows in
the partition itself (`clients`), and its index entries say so by naming no chunk.

Within DESIGN.md section 3:
- the pointer flip is unchanged: a generation and its index are complete before it becomes current;
- a kept generation (current, previous, held, staged) keeps every home its index names: retention
  (`in_use`) drops a generation only when no kept generation refers to it;
- homes are bounded: a new generation refers to at most `MAX_HOMES` other generations; the owners
  of the least-used homes beyond that are written again, so old tables do fall out of use.
A generation written before indexes existed has none: its own table holds everything.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from shared.core.generation import CLIENTS, IMMY_COMPUTERS
from shared.store import read_cache
from shared.store.base import MAX_BATCH_ENTITIES, StoreError, decode_data, encode_data
from shared.store.repository import Store

# Partitions whose rows are shared between generations, each keyed by an owner id.
SHARED = (CLIENTS, IMMY_COMPUTERS)
OWNER_KEY = 10  # the owner id's width at the head of a RowKey: `client_key`, a tenant's `%010d`
INDEX_BUCKET = 1000
# Other generations a new one may refer to; the least-used beyond this are rewritten.
MAX_HOMES = 3
_HEAD = "head"
# The most rows a chunk of a shared partition holds: one transaction's.
CHUNK_ROWS = MAX_BATCH_ENTITIES


class Entry(NamedTuple):
    """Where an owner's rows are as of a generation: their content hash, the generation whose
    table holds them (home), and the partition of that table they are in."""

    digest: str
    home: str
    rows: str


# owner id -> where its rows are
Index = dict[int, Entry]


def index_partition(partition: str) -> str:
    """The partition holding a shared partition's index."""
    return f"index|{partition}"


def chunk_partition(partition: str, first_owner: int) -> str:
    """The partition of a chunk of `partition`'s rows, named by the first owner it holds."""
    return f"{partition}|{first_owner}"


def owner_of(row_key: str) -> int:
    """The owner id a shared row belongs to."""
    return int(row_key[:OWNER_KEY])


def content_hash(rows: Sequence[Mapping[str, Any]]) -> str:
    """A digest of exactly what is stored for one owner: each row's key and data, in order."""
    digest = hashlib.sha256()
    for row in rows:
        digest.update(str(row["RowKey"]).encode())
        digest.update(b"\x00")
        digest.update(decode_data(row).encode())
        digest.update(b"\x01")
    return digest.hexdigest()[:32]


def by_owner(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    """Rows grouped by owner, each group in RowKey order."""
    groups: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: str(r["RowKey"])):
        groups[owner_of(str(row["RowKey"]))].append(row)
    return groups


def index_entities(index: Index, partition: str) -> list[dict[str, Any]]:
    """An index of `partition` as rows: owners in buckets of INDEX_BUCKET, RowKey
    `<bucket, 7 digits>-<part>`, after a `head` row that is there even when no owner is, so an
    indexed generation is told from one written before indexes. An owner's entry is
    `[owner, digest, home, first owner of its chunk]`, or without the last for rows in the
    partition itself (written before chunks)."""
    buckets: dict[int, list[list[Any]]] = defaultdict(list)
    for owner in sorted(index):
        digest, home, where = index[owner]
        entry: list[Any] = [owner, digest, home]
        if where != partition:
            entry.append(int(where.rsplit("|", 1)[1]))
        buckets[owner // INDEX_BUCKET].append(entry)
    rows: list[dict[str, Any]] = [{"RowKey": _HEAD, **encode_data("[]")}]
    for bucket, entries in sorted(buckets.items()):
        # About 80 characters an owner: a bucket is one row of a few properties.
        for part, start in enumerate(range(0, len(entries), INDEX_BUCKET)):
            text = json.dumps(entries[start : start + INDEX_BUCKET], separators=(",", ":"))
            rows.append({"RowKey": f"{bucket:07d}-{part:03d}", **encode_data(text)})
    return rows


def _parse_index(rows: Iterable[Mapping[str, Any]], partition: str) -> Index:
    index: Index = {}
    for row in rows:
        for owner, digest, home, *chunk in json.loads(decode_data(row)):
            where = chunk_partition(partition, int(chunk[0])) if chunk else partition
            index[int(owner)] = Entry(str(digest), str(home), where)
    return index


def read_index(store: Store, generation: str, partition: str) -> Index | None:
    """A generation's whole index of `partition`, or None when it has none (written before
    indexes, or nothing to index): then its own table holds all its rows."""
    rows = store.read_partition(generation, index_partition(partition))
    return _parse_index(rows, partition) if rows else None


def location_of(
    store: Store, generation: str, partition: str, owner: int
) -> tuple[str, str] | None:
    """The generation holding `owner`'s rows as of `generation` and the partition of its table
    they are in, or None if it has none there.

    One small range read per bucket, kept in the read cache: an index never changes once its
    generation is written."""
    bucket = owner // INDEX_BUCKET
    key = (store.identity, generation, partition, bucket)
    found, index = read_cache.index_buckets.get(key)
    if not found:
        rows = store.read_partition(
            generation, index_partition(partition), row_prefix=f"{bucket:07d}-"
        )
        index = _parse_index(rows, partition) if rows else None
        if index is None and _indexed(store, generation, partition):
            index = {}  # an indexed generation without this bucket: no such owner
        read_cache.index_buckets.put(key, index)
    if index is None:
        return generation, partition  # no index: the generation's own table holds everything
    entry = index.get(owner)
    return None if entry is None else (entry.home, entry.rows)


def _indexed(store: Store, generation: str, partition: str) -> bool:
    return bool(store.read_partition(generation, index_partition(partition), row_prefix=_HEAD))


def owner_rows(store: Store, generation: str, partition: str, owner: int) -> list[dict[str, Any]]:
    """One owner's rows as of `generation` (from whichever table holds them), in RowKey order."""
    where = location_of(store, generation, partition, owner)
    if where is None:
        return []
    home, rows = where
    return store.read_partition(home, rows, row_prefix=f"{owner:0{OWNER_KEY}d}")


def all_rows(store: Store, generation: str, partition: str) -> list[dict[str, Any]]:
    """Every row of a shared partition as of `generation`, one range read per home (its
    partition and chunks), in owner order; a home's table may also hold rows other generations
    replaced: they are left out."""
    index = read_index(store, generation, partition)
    if index is None:
        return store.read_partition(generation, partition)
    wanted: dict[str, set[tuple[str, int]]] = defaultdict(set)
    for owner, entry in index.items():
        wanted[entry.home].add((entry.rows, owner))
    rows = []
    for home, places in wanted.items():
        # The partition and its chunks, `<partition>|<digits>`: all sort before `<partition>|~`.
        for row in store.read_partitions(home, partition, f"{partition}|~"):
            if (str(row["PartitionKey"]), owner_of(str(row["RowKey"]))) in places:
                rows.append(row)
    rows.sort(key=lambda r: str(r["RowKey"]))
    return rows


def owner_texts(store: Store, generation: str, partition: str) -> dict[int, list[str]]:
    """Every owner's rows of a shared partition as of `generation`, as the JSON texts stored
    (undecoded), by owner: for a reader that keeps them and decodes one owner at a time."""
    texts: dict[int, list[str]] = defaultdict(list)
    for row in all_rows(store, generation, partition):
        texts[owner_of(str(row["RowKey"]))].append(decode_data(row))
    return dict(texts)


@dataclass(slots=True)
class Shared:
    """A generation's partitions with the rows it shares left out, and what was shared."""

    partitions: dict[str, list[dict[str, Any]]]
    shared_rows: int = 0
    shared_owners: int = 0
    homes: set[str] = field(default_factory=set)


def share_unchanged(
    store: Store,
    generation: str,
    partitions: Mapping[str, list[dict[str, Any]]],
    previous: str | None,
) -> Shared:
    """`partitions` to write for `generation`, with the rows of every owner whose content is as
    `previous` (the generation current now) stored it left out and named in the index instead."""
    out = Shared({k: v for k, v in partitions.items() if k not in SHARED})
    for partition in SHARED:
        if partition not in partitions:
            continue
        groups = by_owner(partitions[partition])
        before = _previous_index(store, previous, partition)
        index: Index = {}
        for owner, rows in groups.items():
            digest = content_hash(rows)
            kept = before.get(owner)
            index[owner] = kept if kept and kept.digest == digest else Entry(digest, generation, "")
        _bound_homes(index, generation)
        out.partitions |= chunked(partition, groups, index, generation)
        out.partitions[index_partition(partition)] = index_entities(index, partition)
        shared = [o for o in index if index[o].home != generation]
        out.shared_owners += len(shared)
        out.shared_rows += sum(len(groups[o]) for o in shared)
        out.homes |= {entry.home for entry in index.values() if entry.home != generation}
    return out


def chunked(
    partition: str, groups: Mapping[int, list[dict[str, Any]]], index: Index, generation: str
) -> dict[str, list[dict[str, Any]]]:
    """The rows of the owners `generation` writes itself, in chunks of whole owners (at most
    CHUNK_ROWS rows unless one owner has more), each owner's index entry naming its chunk."""
    chunks: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] = []
    name = ""
    for owner in sorted(o for o, entry in index.items() if entry.home == generation):
        rows = groups[owner]
        if not current or len(current) + len(rows) > CHUNK_ROWS:
            name, current = chunk_partition(partition, owner), []
            chunks[name] = current
        current.extend(rows)
        index[owner] = Entry(index[owner].digest, generation, name)
    return chunks


def _previous_index(store: Store, previous: str | None, partition: str) -> Index:
    if previous is None:
        return {}
    try:
        found = read_index(store, previous, partition)
    except StoreError:
        return {}  # the previous generation is gone: write everything
    return found or {}  # no index (older format): its rows are its own, written again here


def _bound_homes(index: Index, generation: str) -> None:
    """Rewrite the owners of the least-used homes until at most MAX_HOMES others are named."""
    uses = Counter(entry.home for entry in index.values() if entry.home != generation)
    for home, _count in sorted(uses.items(), key=lambda kv: (kv[1], kv[0]))[
        : max(0, len(uses) - MAX_HOMES)
    ]:
        for owner, entry in index.items():
            if entry.home == home:
                index[owner] = Entry(entry.digest, generation, "")  # its chunk is given later


def patch_index(
    index: Index, written: Mapping[int, Sequence[Mapping[str, Any]]], generation: str
) -> Index:
    """A copy of `index` in which the `written` owners' rows are `generation`'s own, homes bounded
    as `share_unchanged` bounds them (the owners of a dropped home become `generation`'s too:
    their rows must be written again, `owners_rows` reads them)."""
    out = dict(index)
    for owner, rows in written.items():
        out[owner] = Entry(content_hash(rows), generation, "")  # its chunk is given by `chunked`
    _bound_homes(out, generation)
    return out


def owners_rows(
    store: Store, index: Index, partition: str, owners: Iterable[int]
) -> list[dict[str, Any]]:
    """The rows of `owners` of `partition` from where `index` puts them (one range read per home
    and chunk), as they are written (no PartitionKey)."""
    by_place: dict[tuple[str, str], set[int]] = defaultdict(set)
    for owner in owners:
        entry = index[owner]
        by_place[(entry.home, entry.rows or partition)].add(owner)
    found = []
    for (home, rows), wanted in by_place.items():
        for row in store.read_partition(home, rows):
            if owner_of(str(row["RowKey"])) in wanted:
                found.append({k: v for k, v in row.items() if k != "PartitionKey"})
    return found


def in_use(store: Store, kept: Iterable[str]) -> set[str]:
    """The `kept` generations and every generation their indexes name as a home: none of these
    may be dropped."""
    found = set(kept)
    for generation in list(found):
        for partition in SHARED:
            try:
                index = read_index(store, generation, partition)
            except StoreError:
                continue  # not stored (any more): nothing it names
            found |= {entry.home for entry in (index or {}).values()}
    return found
