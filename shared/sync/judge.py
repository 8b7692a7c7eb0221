"""The mass-change guard's judgement of a new generation against the current one (DESIGN.md 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from shared.store.generations import read_manifest, read_matches, read_target_sets
from shared.store.repository import Store
from shared.store.state import Pointer


@dataclass(frozen=True, slots=True)
class Judgement:
    """The guard's verdict (None: the generation may serve) and the outcome's fingerprint."""

    verdict: Verdict | None
    digest: str


def _held(verdict: Verdict) -> Verdict | None:
    return verdict if verdict.parts() else None


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
    new_ids = {key: {t.client_id for t in found} for key, found in targets.items()}
    new_mapped = {
        key: {t.client_id for t in found if t.immy_tenant_id is not None}
        for key, found in targets.items()
    }
    sets: dict[str, set[int]] = dict(new_ids)
    if snapshot.immybot:
        sets |= {f"mapped|{key}": ids for key, ids in new_mapped.items()}
    digest = fingerprint(sets)
    rejects = reject_verdict(read, rejected)
    if current is None:
        return Judgement(_held(Verdict(rejects=rejects)), digest)
    manifest, _ = read_manifest(store, current.generation)
    old_ids: dict[str, set[int]] = {}
    old_mapped: dict[str, set[int]] = {}
    for key in targets:
        if key in manifest.rules:
            ids, mapped = read_target_sets(store, current.generation, manifest.rules[key].partition)
            old_ids[key], old_mapped[key] = ids, mapped
    mapped_targets = tenants = None
    if manifest.immybot.configured and snapshot.immybot:
        mapped_targets = guard_verdict(old_mapped, new_mapped, settings.sync_max_drop)
        before = {m.tenant_id for m in read_matches(store, current.generation).values()}
        after = {m.tenant_id for m in snapshot.matches.values()}
        tenants = tenants_verdict(
            {t for t in before if t is not None},
            {t for t in after if t is not None},
            settings.sync_max_drop,
        )
    verdict = Verdict(
        targets=guard_verdict(old_ids, new_ids, settings.sync_max_drop),
        mapped_targets=mapped_targets,
        mapped_tenants=tenants,
        rejects=rejects,
        empty=empty_verdict(manifest.read, read),
    )
    return Judgement(_held(verdict), digest)
