"""Targets answers: who is entitled to a software, contract type or item, from the current
generation (a site-scoped rule's computers: `shared.api.targets_sites`).

Named software is answered from the targets the sync (or a rule edit) resolved: the pointer and
manifest (`shared.api.current`), the rule's unmapped and targets partitions, and then from the
answer's bytes cached in the process. Ad hoc `contract_type=` and `item=` queries resolve against
the whole snapshot, cached per generation in the process.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date

from pydantic import TypeAdapter

from shared.api.catalog import ad_hoc_rule
from shared.api.current import (
    AnswerKey,
    StalePartition,
    cached_answer,
    keep_answer,
    rule_in,
    snapshot_of,
    with_fresh_state,
)
from shared.api.models import TargetsResponse
from shared.api.targets_query import TargetsQuery, described, etag_matches
from shared.api.targets_sites import site_scoped_answer
from shared.core.generation import Manifest, RuleEntry
from shared.core.rules import Rule
from shared.core.targets import (
    Target,
    TargetCounts,
    UnmappedClient,
    count_targets,
    resolve,
    unmapped_of,
)
from shared.records.immybot import ImmyComputer
from shared.store.generations import (
    read_catalog,
    read_computers,
    read_target_texts,
    read_targets,
    read_unmapped,
)
from shared.store.read_cache import Current
from shared.store.repository import Store


@dataclass(frozen=True, slots=True)
class Answer:
    """A targets answer: its ETag, and the JSON body unless the caller's copy is current."""

    etag: str
    body: bytes | None


def answer_targets(store: Store, query: TargetsQuery, if_none_match: str | None = None) -> Answer:
    """Targets for a query from the current generation, or a 304-style answer if unchanged.

    A named software's answer is kept as bytes per generation, manifest version, rule version and
    resolution (`shared.api.current`): a repeated call costs no Table round trip and no encoding.
    """

    def answer(current: Current) -> Answer:
        if query.kind == "software":
            return _named_answer(store, current, query, if_none_match)
        return _ad_hoc_answer(store, current, query, if_none_match)

    return with_fresh_state(store, answer)


def _named_answer(
    store: Store, current: Current, query: TargetsQuery, if_none_match: str | None
) -> Answer:
    pointer = current.pointer
    entry = rule_in(current.manifest, query.value)
    # The resolution day is part of the version: the same rule re-resolved on a later day (a
    # rule edit on an older generation) may have other targets.
    version = f"{entry.version}.{entry.resolved_on:%Y%m%d}"
    if query.computers and entry.rule.site_ids is not None:

        def envelope() -> TargetsResponse:
            unmapped = read_unmapped(store, pointer.generation, entry)
            return _envelope(entry.software, query, current.manifest, entry.rule, entry.counts,
                             entry.resolved_on, unmapped)  # fmt: skip

        etag, body = site_scoped_answer(
            store, current, entry, envelope,
            lambda links: _etag(pointer.generation, f"{version}.{links}", query), if_none_match,
        )  # fmt: skip
        return Answer(etag, body)
    etag = _etag(pointer.generation, version, query)
    if etag_matches(if_none_match, etag):
        return Answer(etag, None)
    # One entry per rule, whatever the spelling: the echo of the query is put in afterwards,
    # so spellings of one software cannot push other answers out of the cache.
    canonical = TargetsQuery("software", entry.software, query.computers)
    key: AnswerKey = (
        store.identity,
        pointer.generation,
        current.manifest_etag,
        entry.partition,
        entry.version,
        canonical,
    )
    body = cached_answer(key)
    if body is None:
        body = _software_answer(store, current, entry, canonical)
        keep_answer(key, body)
    return Answer(etag, _echo(body, canonical, query))


def _ad_hoc_answer(
    store: Store, current: Current, query: TargetsQuery, if_none_match: str | None
) -> Answer:
    pointer, manifest = current.pointer, current.manifest
    rule = ad_hoc_rule(query, read_catalog(store, pointer.generation))
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


def _echo(body: bytes, cached: TargetsQuery, query: TargetsQuery) -> bytes:
    """`body` (answering `cached`) with the query echoed as the caller wrote it.

    `"query":{` cannot occur inside a JSON string (its quotes would be escaped), and the envelope's
    own member comes before the targets: the first occurrence is the envelope's.
    """
    if query == cached:
        return body
    old = b'"query":' + _QUERY_JSON.dump_json(described(cached))
    head, found, tail = body.partition(old)
    if not found:
        raise AssertionError("TargetsResponse must serialise `query` as a member")
    return head + b'"query":' + _QUERY_JSON.dump_json(described(query)) + tail


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
            raise StalePartition
        return _with_computers(store, generation, envelope, found)
    # Another instance's rule edit deletes the partitions its manifest no longer names (in one
    # transaction up to 100 entities): a cached manifest may name one that is gone. Never answer
    # "no targets" for an entry that counts some.
    texts = read_target_texts(store, generation, entry.partition)
    if entry.targets and not texts:
        raise StalePartition
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
        query=described(query),
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
