"""The mass-change guard's judgement of a new generation against the current one (DESIGN.md 3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from shared.core.guard import (
    Verdict,
    empty_verdict,
    fingerprint,
    guard_verdict,
    reject_verdict,
    tenants_verdict,
)
from shared.core.targets import Snapshot, Target
from shared.settings import Settings
from shared.store.generations import read_manifest, read_target_sets
from shared.store.matches import read_matches
from shared.store.repository import Store
from shared.store.state import Pointer


@dataclass(frozen=True, slots=True)
class Judgement:
    """The guard's verdict (None: the generation may serve) and the outcome's fingerprint."""

    verdict: Verdict | None
    digest: str


def _held(verdict: Verdict) -> Verdict | None:
    return verdict if verdict.parts() else None


@dataclass(frozen=True, slots=True)
class Before:
    """What the guard compares with, of the current generation: its manifest's record counts,
    each rule's target ids and mapped target ids, and its mapped tenants (None: no ImmyBot)."""

    read: Mapping[str, int]
    ids: dict[str, set[int]]
    mapped: dict[str, set[int]]
    tenants: set[int] | None


def judge(
    store: Store,
    settings: Settings,
    current: Pointer | None,
    read: Mapping[str, int],
    rejected: Mapping[str, Mapping[str, int]],
    snapshot: Snapshot,
    targets: Mapping[str, Sequence[Target]],
) -> Judgement:
    """The mass-change guard's verdict on a new generation against the current one."""
    before = None if current is None else read_before(store, current, targets, snapshot.immybot)
    after = {m.tenant_id for m in snapshot.matches.values()} if snapshot.immybot else None
    return judge_against(settings, before, read, rejected, targets, after)


def read_before(store: Store, current: Pointer, keys: Iterable[str], immybot: bool) -> Before:
    """The current generation's side of the guard, for the rules `keys`."""
    manifest, _ = read_manifest(store, current.generation)
    ids: dict[str, set[int]] = {}
    mapped: dict[str, set[int]] = {}
    for key in keys:
        if key in manifest.rules:
            ids[key], mapped[key] = read_target_sets(
                store, current.generation, manifest.rules[key].partition
            )
    tenants = None
    if manifest.immybot.configured and immybot:
        found = read_matches(store, current.generation).values()
        tenants = {m.tenant_id for m in found if m.tenant_id is not None}
    return Before(manifest.read, ids, mapped, tenants)


def judge_against(
    settings: Settings,
    before: Before | None,
    read: Mapping[str, int],
    rejected: Mapping[str, Mapping[str, int]],
    targets: Mapping[str, Sequence[Target]],
    tenants_after: Iterable[int | None] | None,
) -> Judgement:
    """The verdict on new `targets` (and, with ImmyBot, the mapped tenants after) against
    `before` (None: nothing is current yet)."""
    new_ids = {key: {t.client_id for t in found} for key, found in targets.items()}
    new_mapped = {
        key: {t.client_id for t in found if t.immy_tenant_id is not None}
        for key, found in targets.items()
    }
    sets: dict[str, set[int]] = dict(new_ids)
    if tenants_after is not None:
        sets |= {f"mapped|{key}": ids for key, ids in new_mapped.items()}
    digest = fingerprint(sets)
    rejects = reject_verdict(read, rejected)
    if before is None:
        return Judgement(_held(Verdict(rejects=rejects)), digest)
    mapped_targets = tenants = None
    if before.tenants is not None and tenants_after is not None:
        mapped_targets = guard_verdict(before.mapped, new_mapped, settings.sync_max_drop)
        after = {t for t in tenants_after if t is not None}
        tenants = tenants_verdict(before.tenants, after, settings.sync_max_drop)
    verdict = Verdict(
        targets=guard_verdict(before.ids, new_ids, settings.sync_max_drop),
        mapped_targets=mapped_targets,
        mapped_tenants=tenants,
        rejects=rejects,
        empty=empty_verdict(before.read, read),
    )
    return Judgement(_held(verdict), digest)
