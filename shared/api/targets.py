"""The read side of the API: targets and catalogue answers from the current generation.

Named software is answered from the targets the sync (or a rule edit) resolved: the pointer and
manifest (cached for a few seconds, `shared.store.read_cache`), the rule's unmapped and targets partitions,
and then from the answer's bytes cached in the process. Ad hoc `contract_type=` and `item=` queries
resolve against the whole snapshot, cached per generation in the process.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, TypeVar

from pydantic import TypeAdapter

from shared.api.models import CatalogResponse, TargetsResponse
from shared.api.params import lookup_value
from shared.api.problems import ApiError, problem
from shared.core.catalog import Catalog, scope_warnings
from shared.core.generation import Manifest, RuleEntry
from shared.core.rules import ItemMatch, Rule, closest, normalise
from shared.core.targets import (
    Snapshot,
    Target,
    TargetCounts,
    UnmappedClient,
    count_targets,
    resolve,
    unmapped_of,
)
from shared.core.text import CONTROLS, KEY_FORBIDDEN, KEY_UNSAFE_COMPAT, parse_id
from shared.records.immybot import ImmyComputer
from shared.store.base import StoreError
from shared.store.generations import (
    read_catalog,
    read_computers,
    read_manifest,
    read_snapshot,
    read_target_texts,
    read_targets,
    read_unmapped,
)
from shared.store.read_cache import AnswerCache, Current, CurrentCache
from shared.store.repository import Store
from shared.store.state import Pointer

T = TypeVar("T")
QueryKind = Literal["software", "contract_type", "item"]
QUERY_KINDS: tuple[QueryKind, ...] = ("software", "contract_type", "item")
# `code` carries the function key when a caller cannot send the x-functions-key header.
HOST_PARAMS = frozenset({"code"})
MAX_VALUE = 200


@dataclass(frozen=True, slots=True)
class TargetsQuery:
    """What the caller asked targets for."""

    kind: QueryKind
    value: str
    computers: bool = False


@dataclass(frozen=True, slots=True)
class Answer:
    """A targets answer: its ETag, and the JSON body unless the caller's copy is current."""

    etag: str
    body: bytes | None


def parse_targets_query(params: Mapping[str, str]) -> TargetsQuery:
    """Exactly one of software, contract_type or item, with a sane value; else a 400."""
    expand = params.get("expand")
    if expand is not None and expand != "computers":
        raise ApiError(problem(400, "bad-query", "expand may only be 'computers'"))
    unknown = sorted(set(params) - set(QUERY_KINDS) - HOST_PARAMS - {"expand"})
    if unknown:
        raise ApiError(
            problem(
                400,
                "bad-query",
                f"unknown parameter(s): {', '.join(unknown)}",
                allowed=list(QUERY_KINDS),
            )
        )
    given = [k for k in QUERY_KINDS if k in params]
    if len(given) != 1:
        detail = "give one of software, contract_type or item" + (
            f", not {len(given)}" if given else ""
        )
        raise ApiError(problem(400, "bad-query", detail))
    kind = given[0]
    return TargetsQuery(kind, lookup_value(kind, params[kind], MAX_VALUE), expand is not None)


def current_state(store: Store) -> Current:
    """The current pointer and manifest (cached for a few seconds, see `shared.store.read_cache`), or a
    503 telling the caller to come back after the first sync."""
    current = _current.read(store)
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


def answer_targets(store: Store, query: TargetsQuery, if_none_match: str | None = None) -> Answer:
    """Targets for a query from the current generation, or a 304-style answer if unchanged.

    A named software's answer is kept as bytes per generation, manifest version, rule version and
    resolution (`_answers`): a repeated call costs no Table round trip and no serialisation.
    """
    return _with_fresh_state(store, lambda current: _answer(store, current, query, if_none_match))


def _with_fresh_state(store: Store, answer: Callable[[Current], T]) -> T:
    """`answer` from the cached current state; if that state names data another instance has
    dropped since (a generation deleted, a rule's partitions replaced), once more from a fresh
    read of the pointer and manifest. A 503 if the fresh state fails too."""
    current = current_state(store)
    try:
        return answer(current)
    except (StoreError, _Stale) as error:
        _current.forget(store.identity)
        fresh = current_state(store)
        if (fresh.pointer.generation, fresh.manifest_etag) == (
            current.pointer.generation,
            current.manifest_etag,
        ):
            if isinstance(error, _Stale):
                raise StoreError("a rule's targets partition is missing") from None
            raise
    try:
        return answer(fresh)
    except _Stale:
        raise StoreError("the generation changed while being read") from None


class _Stale(Exception):
    """A manifest entry whose targets partition is gone."""


def _answer(
    store: Store, current: Current, query: TargetsQuery, if_none_match: str | None
) -> Answer:
    pointer, manifest = current.pointer, current.manifest
    if query.kind == "software":
        entry = rule_in(manifest, query.value)
        # The resolution day is part of the version: the same rule re-resolved on a later day (a
        # rule edit on an older generation) may have other targets.
        etag = _etag(pointer.generation, f"{entry.version}.{entry.resolved_on:%Y%m%d}", query)
        if etag_matches(if_none_match, etag):
            return Answer(etag, None)
        # One entry per rule, whatever the spelling: the echo of the query is put in afterwards,
        # so spellings of one software cannot push other answers out of the cache.
        canonical = TargetsQuery("software", entry.software, query.computers)
        key = (
            store.identity,
            pointer.generation,
            current.manifest_etag,
            entry.partition,
            entry.version,
            canonical,
        )
        body = _answers.get(key)
        if body is None:
            body = _software_answer(store, current, entry, canonical)
            _answers.put(key, body)
        return Answer(etag, _echo(body, canonical, query))

    rule = _ad_hoc_rule(query, read_catalog(store, pointer.generation))
    version = hashlib.sha256(rule.model_dump_json().encode()).hexdigest()[:12]
    snapshot = snapshot_of(store, pointer.generation, current.manifest_etag)
    etag = _etag(pointer.generation, f"{version}.{snapshot.mapping_digest}", query)
    if etag_matches(if_none_match, etag):
        return Answer(etag, None)
    found = resolve(snapshot, rule, manifest.today)
    envelope = _envelope(
        None,
        query,
        manifest,
        rule,
        count_targets(found),
        manifest.today,
        unmapped_of(found, snapshot),
    )
    if query.computers:
        return Answer(etag, _with_computers(store, pointer.generation, envelope, found))
    return Answer(etag, envelope.model_copy(update={"targets": found}).model_dump_json().encode())


_QUERY_JSON = TypeAdapter(dict[str, str])


def _described(query: TargetsQuery) -> dict[str, str]:
    return {query.kind: query.value} | ({"expand": "computers"} if query.computers else {})


def _echo(body: bytes, cached: TargetsQuery, query: TargetsQuery) -> bytes:
    """`body` (answering `cached`) with the query echoed as the caller wrote it.

    `"query":{` cannot occur inside a JSON string (its quotes would be escaped), and the envelope's
    own member comes before the targets: the first occurrence is the envelope's.
    """
    if query == cached:
        return body
    old = b'"query":' + _QUERY_JSON.dump_json(_described(cached))
    head, found, tail = body.partition(old)
    if not found:
        raise AssertionError("TargetsResponse must serialise `query` as a member")
    return head + b'"query":' + _QUERY_JSON.dump_json(_described(query)) + tail


def _software_answer(
    store: Store, current: Current, entry: RuleEntry, query: TargetsQuery
) -> bytes:
    generation = current.pointer.generation
    unmapped = read_unmapped(store, generation, entry)
    envelope = _envelope(
        entry.software,
        query,
        current.manifest,
        entry.rule,
        entry.counts,
        entry.resolved_on,
        unmapped,
    )
    if query.computers:
        found = read_targets(store, generation, entry.partition)
        if entry.targets and not found:
            raise _Stale
        return _with_computers(store, generation, envelope, found)
    # Another instance's rule edit deletes the partitions its manifest no longer names (in one
    # transaction up to 100 entities): a cached manifest may name one that is gone. Never answer
    # "no targets" for an entry that counts some.
    texts = read_target_texts(store, generation, entry.partition)
    if entry.targets and not texts:
        raise _Stale
    return _splice(envelope, b"[" + b",".join(t[1:-1].encode() for t in texts if len(t) > 2) + b"]")


def _etag(generation: str, version: str, query: TargetsQuery) -> str:
    return f'"{generation}.{version}{".computers" if query.computers else ""}"'


def _with_computers(
    store: Store, generation: str, envelope: TargetsResponse, found: list[Target]
) -> bytes:
    tenants = {t.immy_tenant_id for t in found if t.immy_tenant_id is not None}
    computers: dict[str, list[ImmyComputer]] = {str(t): [] for t in sorted(tenants)}
    if tenants:
        for computer in read_computers(store, generation):
            if computer.tenant_id in tenants:
                computers[str(computer.tenant_id)].append(computer)
    answer = envelope.model_copy(update={"computers": computers, "targets": found})
    return answer.model_dump_json().encode()


def answer_catalog(store: Store) -> CatalogResponse:
    """The contract types and recurring items of the current generation."""
    return _with_fresh_state(store, lambda current: _catalog(store, current))


def _catalog(store: Store, current: Current) -> CatalogResponse:
    pointer = current.pointer
    catalog = read_catalog(store, pointer.generation)
    warnings = {e.software: scope_warnings(e.rule) for e in current.manifest.rules.values()}
    return CatalogResponse(
        generation=pointer.generation,
        synced_at=pointer.synced_at,
        contract_types=catalog.contract_types,
        items=catalog.items,
        rule_warnings={k: v for k, v in sorted(warnings.items()) if v},
    )


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against a list of tags, or `*`."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def _ad_hoc_rule(query: TargetsQuery, catalog: Catalog) -> Rule:
    value = query.value
    if query.kind == "contract_type":
        names = [e.name for e in catalog.contract_types]
        if normalise(value) not in {normalise(n) for n in names}:
            raise ApiError(
                problem(
                    404,
                    "unknown-contract-type",
                    f"no contract type {value!r} in HaloPSA",
                    closest=closest(value, names),
                )
            )
        return Rule(software=_label(query), contract_types=[value])
    matches = [ItemMatch(name=value), ItemMatch(code=value)]
    # An item id is a positive 32-bit number in ASCII digits ("²".isdigit() is true, "0" is no
    # id); any other value is looked up as a name or code only.
    item_id = parse_id(value)
    if item_id is not None:
        matches.append(ItemMatch(id=item_id))
    known = [e.name for e in catalog.items] + [c for e in catalog.items for c in e.codes]
    ids = {e.id for e in catalog.items if e.id is not None}
    if normalise(value) not in {normalise(k) for k in known} and item_id not in ids:
        raise ApiError(
            problem(
                404,
                "unknown-item",
                f"no current recurring item {value!r} in HaloPSA",
                closest=closest(value, known),
            )
        )
    return Rule(software=_label(query), items=matches)


def _label(query: TargetsQuery) -> str:
    """`item=VALUE` as an ad hoc rule's software: shortened, and with what a rule's name may not
    hold (/ \\ # ?, their fullwidth forms) replaced, since the query value may hold them."""
    label = f"{query.kind}={query.value}"[:100]
    return re.sub(f"[{CONTROLS}{KEY_FORBIDDEN}{KEY_UNSAFE_COMPAT}]", "_", label)


def _envelope(
    software: str | None,
    query: TargetsQuery,
    manifest: Manifest,
    rule: Rule,
    counts: TargetCounts,
    resolved_on: date,
    unmapped: list[UnmappedClient],
) -> TargetsResponse:
    return TargetsResponse(
        software=software,
        query=_described(query),
        generation=manifest.generation,
        synced_at=manifest.synced_at,
        resolved_on=resolved_on,
        rule=rule,
        counts=counts,
        immybot_configured=manifest.immybot.configured,
        unmapped=unmapped,
        targets=[],
    )


_EMPTY_TARGETS = b'"targets":[]}'


def _splice(envelope: TargetsResponse, targets: bytes) -> bytes:
    """The envelope's JSON with the stored targets array in place of its empty one.

    The stored arrays were written by the same Target model, so the answer is exactly what
    serialising TargetsResponse would give, without decoding and re-encoding thousands of targets.
    """
    head = envelope.model_dump_json().encode()
    if not head.endswith(_EMPTY_TARGETS):
        raise AssertionError("TargetsResponse must serialise `targets` last")
    return head[: -len(_EMPTY_TARGETS)] + b'"targets":' + targets + b"}"


_answers: AnswerCache[tuple[str, str, str, str, str, TargetsQuery]] = AnswerCache()
_current = CurrentCache()


def clear_caches() -> None:
    """Drop the in-process caches of the current generation, answers and snapshots."""
    _current.clear()
    _answers.clear()
    with _cache.lock:
        _cache.key, _cache.snapshot = None, None


@dataclass
class _SnapshotCache:
    key: tuple[str, str, str] | None = None
    snapshot: Snapshot | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache = _SnapshotCache()


def snapshot_of(store: Store, generation: str, manifest_etag: str | None = None) -> Snapshot:
    """The whole snapshot of a generation, kept in memory until its manifest changes.

    Keyed by the manifest's ETag (read here unless the caller has it): a mapping or rule change
    rewrites the manifest, so every instance notices on its next read.
    """
    if manifest_etag is None:
        _, manifest_etag = read_manifest(store, generation)
    key = (store.identity, generation, manifest_etag)
    with _cache.lock:
        if _cache.key == key and _cache.snapshot is not None:
            return _cache.snapshot
    snapshot = read_snapshot(store, generation)
    with _cache.lock:
        _cache.key, _cache.snapshot = key, snapshot
    return snapshot
