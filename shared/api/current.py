"""The current generation as the API reads it, and the API's in-process read caches: pointer and
manifest (for a few seconds, `shared.store.read_cache`), the whole snapshot, and whole answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from shared.api.problems import ApiError, problem
from shared.api.targets_query import TargetsQuery
from shared.core.generation import Manifest, RuleEntry
from shared.core.rules import closest, normalise
from shared.core.targets import Snapshot
from shared.store import read_cache
from shared.store.base import StoreError
from shared.store.generations import AppliedRules, read_manifest, read_snapshot
from shared.store.read_cache import Current
from shared.store.repository import Store
from shared.store.state import Pointer

T = TypeVar("T")
# A named software's answer: store, generation, manifest ETag, partition, rule version, query.
AnswerKey = tuple[str, str, str, str, str, TargetsQuery]


class StalePartition(Exception):
    """A manifest entry whose targets partition is gone."""


def current_state(store: Store) -> Current:
    """The current pointer and manifest (cached for a few seconds, see `shared.store.read_cache`),
    or a 503 telling the caller to come back after the first sync."""
    current = read_cache.current.read(store)
    if current is None:
        raise ApiError(
            problem(503, "no-snapshot", "no sync has completed yet; try again after the first one"),
            {"Retry-After": "60"},
        )
    return current


def current_pointer(store: Store) -> Pointer:
    """The current generation, or a 503 telling the caller to come back after the first sync."""
    return current_state(store).pointer


def rule_in(manifest: Manifest, software: str) -> RuleEntry:
    """The manifest's entry for `software`, or a 404 naming the known and closest ones."""
    entry = manifest.rules.get(normalise(software))
    if entry is None:
        known = sorted(e.software for e in manifest.rules.values())
        raise ApiError(
            problem(
                404,
                "unknown-software",
                f"no rule for software {software!r}",
                known=known,
                closest=closest(software, known),
            )
        )
    return entry


def with_fresh_state(store: Store, answer: Callable[[Current], T]) -> T:
    """`answer` from the cached current state; if that state names data another instance has
    dropped since (a generation deleted, a rule's partitions replaced), once more from a fresh
    read of the pointer and manifest. A 503 if the fresh state fails too."""
    current = current_state(store)
    try:
        return answer(current)
    except (StoreError, StalePartition) as error:
        read_cache.current.forget(store.identity)
        fresh = current_state(store)
        if (fresh.pointer.generation, fresh.manifest_etag) == (
            current.pointer.generation,
            current.manifest_etag,
        ):
            if isinstance(error, StalePartition):
                raise StoreError("a rule's targets partition is missing") from None
            raise
    try:
        return answer(fresh)
    except StalePartition:
        raise StoreError("the generation changed while being read") from None


def clear_caches() -> None:
    """Drop the in-process caches of the current generation, answers and snapshots."""
    read_cache.current.clear()
    read_cache.answers.clear()
    read_cache.snapshots.clear()


def cached_answer(key: AnswerKey) -> bytes | None:
    """A named software's answer kept earlier, or None."""
    return read_cache.answers.get(key)


def keep_answer(key: AnswerKey, body: bytes) -> None:
    """Keep a named software's answer for the next caller."""
    read_cache.answers.put(key, body)


def snapshot_of(store: Store, generation: str, manifest_etag: str | None = None) -> Snapshot:
    """The whole snapshot of a generation, kept in memory until its manifest changes.

    Keyed by the manifest's ETag (read here unless the caller has it): a mapping or rule change
    rewrites the manifest, so every instance notices on its next read.
    """
    if manifest_etag is None:
        _, manifest_etag = read_manifest(store, generation)
    key = (store.identity, generation, manifest_etag)
    kept = read_cache.snapshots.get(key)
    if kept is not None:
        return kept
    snapshot = read_snapshot(store, generation)
    read_cache.snapshots.put(key, snapshot)
    return snapshot


def keep_snapshot(
    store: Store, generation: str, snapshot: Snapshot, read_etag: str, applied: AppliedRules
) -> None:
    """Keep `snapshot` (what the manifest of token `read_etag` saw, as `applied` left it) under
    the manifest's new token, so the next edit need not read every record again: only when
    `applied` replaced that very manifest (else something else, a mapping say, changed since)."""
    if applied.replaced_etag == read_etag:
        read_cache.snapshots.put((store.identity, generation, applied.etag), snapshot)
