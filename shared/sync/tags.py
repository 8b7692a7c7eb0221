"""One ImmyBot tag per rule, carried by exactly the tenants the rule targets, or, for a site-scoped
rule, by exactly the computers at its targets' sites.

ImmyBot deploys natively to a Tag target, so keeping `IMMY_TAG_PREFIX + software` equal to a rule's
targets lets an admin point a deployment at it with no script. After a generation becomes current
(never from a held one) and asset population has run, the sync calls `apply_immy_tags`, which, per
`IMMY_TAGS`:

- `off`: does nothing;
- `plan`: computes the changes (tags to create, tenants or computers to add and remove) and records
  them for `GET /api/immybot/tags` (which adds each client's last change of the rule from the
  change log, shared.sync.changes: why its tenant gains or loses the tag), writing nothing to
  ImmyBot;
- `apply`: records the same plan and makes it, in as few requests as ImmyBot's API allows
  (`POST /api/v1/tenants/add-tags` and `/api/v1/computers/add-tags` take lists of entity and tag
  ids, so one request per distinct set of entities, level and direction).

Only tags whose description starts with `MANAGED_MARKER` are touched; a same-named tag without it
is reported and left alone. Removals are guarded like the snapshot: removing more than
`SYNC_MAX_DROP` of a tag's tenants (or computers), or all of them, is held (adds still go ahead)
until an admin approves it with `POST /api/sync/approve?tag=<software>`; the approved removal is
made by the next run. An ImmyBot error mid-way stops the run's writes; the next run plans again
from ImmyBot's state and converges; a run with nothing to change sends no write.

Site-scoped rules: where a computer is comes from the links asset population stored with the
generation (`shared.store.site_links`); computers whose site is unknown are listed (`unplaced`);
with no links at all the rule's tag is left as it is.

After an event's refresh (shared.sync.event_refresh) the same run is made for the tenants of the
clients it changed only (`scope`): their tenant-level adds and removals, against ImmyBot's tenants
as they are now; the hold for mass removals applies as to any run, and computer-level changes wait
for the next sync. Offboarding: with `offboard_days` on a rule,
a tenant taken off the rule's tag is remembered and carries `<tag> (offboarding)` for that many
days, so an uninstall deployment can target it (`shared.sync.tag_store` keeps that memory).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.computer_tags import Fleet
from shared.core.generation import Manifest
from shared.core.tag_base import (
    OFFBOARDING_SUFFIX,
    ApplyResult,
    Level,
    RuleTags,
    TagChange,
    TagMode,
    tag_description,
)
from shared.core.tag_plan import minimum_requests, plan_rule, scope_plan, write_phases
from shared.core.targets import Target
from shared.core.text import refused_character
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.records.immybot import ImmyComputer, ImmyTenant
from shared.settings import Settings
from shared.store.base import StoreError
from shared.store.generations import read_computers, read_manifest, read_targets, read_tenants
from shared.store.repository import Store
from shared.store.site_links import read_site_links
from shared.sync.tag_store import (
    Done,
    RuleMemory,
    remember,
    rule_memory,
    save_plans,
    save_scoped_plans,
)

log = logging.getLogger("halo_immy.immy_tags")

# -- the run -----------------------------------------------------------------------------------


async def apply_immy_tags(
    settings: Settings,
    store: Store,
    immy: ImmyClient,
    generation: str,
    now: datetime,
    computers: Sequence[ImmyComputer] | None = None,
    *,
    scope: frozenset[int] | None = None,
    targets: Mapping[str, Sequence[Target]] | None = None,
) -> dict[str, Any]:
    """Plan (and with `IMMY_TAGS=apply` make) every rule's tag changes for a current generation.

    `computers` are the generation's, when the caller has them at hand (else they are read back
    from it): the tags they carry are what computer tags are planned against. `scope` (an
    event's run): only these tenants' changes are made. `targets` (by rule key) are the
    generation's, when the caller holds them (else they are read).

    Never raises: the generation is already serving, so a failure here is reported (in the
    returned dict, which the run records as `immy_tags`) and left for the next run.
    """
    mode = TagMode(settings.immy_tags)
    if mode is TagMode.OFF:
        return {"mode": str(mode)}
    refused = refused_character(settings.immy_tag_prefix)
    if refused is not None:
        # Every tag name starts with the prefix: none is written that hides or reorders text.
        log.warning("ImmyBot tags not reconciled: IMMY_TAG_PREFIX holds %s", refused)
        return {"mode": str(mode), "error": f"IMMY_TAG_PREFIX may not contain {refused}"}
    try:
        return await _run(settings, store, immy, generation, now, mode, computers, scope, targets)
    except (ImmyError, StoreError) as error:
        log.warning("ImmyBot tags not reconciled: %s", error)
        return {"mode": str(mode), "error": str(error)}
    except Exception as error:
        log.exception("ImmyBot tags failed unexpectedly")
        return {"mode": str(mode), "error": f"{type(error).__name__}: {str(error)[:300]}"}


@dataclass(frozen=True, slots=True)
class _Inputs:
    """What a run plans from, of the store: the computers (and where they are), each rule's
    targets and what is remembered for it (approvals, offboarding)."""

    fleet: Fleet
    targets: dict[str, Sequence[Target]]
    memory: dict[str, RuleMemory]


async def _run(
    settings: Settings,
    store: Store,
    immy: ImmyClient,
    generation: str,
    now: datetime,
    mode: TagMode,
    computers: Sequence[ImmyComputer] | None,
    scope: frozenset[int] | None = None,
    targets: Mapping[str, Sequence[Target]] | None = None,
) -> dict[str, Any]:
    manifest, _ = await asyncio.to_thread(read_manifest, store, generation)
    if not manifest.immybot.configured or manifest.immybot.note:
        # Tenants carried over from an older generation say nothing about today's tags.
        return {"mode": str(mode), "skipped": "ImmyBot's tenants were not read by this run"}
    started = immy.requests
    inputs = await asyncio.to_thread(
        _inputs, store, manifest, generation, computers, scope, targets
    )
    plans = await _plan(settings, store, immy, manifest, generation, now, inputs, scope)
    work = plans if scope is None else [scope_plan(p, scope) for p in plans]
    changes = [c for p in work for c in p.changes]
    result = ApplyResult(
        at=now,
        mode=mode,
        generation=generation,
        added=sum(len(c.add) for c in changes),
        removed=sum(len(c.remove) for c in changes),
        created=[c.tag for c in changes if c.create],
        held=[p.tag or p.software for p in work if p.held or p.held_cleanup],
        minimum_requests=minimum_requests(changes),
    )
    if mode is TagMode.APPLY:
        done: Done = set()
        error = await _make(immy, changes, done)
        result = _made(result, changes, done, error, requests=immy.requests - started)
        await asyncio.to_thread(
            remember, store, manifest.rules.keys(), work, done, now.date(), scope is None
        )
        if scope is not None and done:
            # The stored plans show what is left to do: plan again from ImmyBot as it is now.
            plans = await _plan(settings, store, immy, manifest, generation, now, inputs, scope)
    else:
        result = result.model_copy(update={"requests": immy.requests - started})
    keys = [e.rule.key for e in manifest.rules.values()]
    save = save_plans if scope is None else save_scoped_plans
    await asyncio.to_thread(save, store, plans, result, keys)
    summary = _summary(result, work, immy.requests)
    if scope is not None:
        summary["scope"] = sorted(scope)
    return summary


def _inputs(
    store: Store,
    manifest: Manifest,
    generation: str,
    computers: Sequence[ImmyComputer] | None,
    scope: frozenset[int] | None,
    targets: Mapping[str, Sequence[Target]] | None,
) -> _Inputs:
    """The store's part of a run's plan, read once (a run that writes plans again after)."""
    scoped = any(e.rule.site_ids is not None for e in manifest.rules.values())
    if computers is None and scope is not None:
        # An event's run changes tenant tags only: its tenants' computers are all it needs
        # (computer-level plans are stored as the last full run made them: save_scoped_plans).
        computers = [c for t in sorted(scope) for c in read_computers(store, generation, t)]
    found = targets or {}
    return _Inputs(
        fleet=_fleet(store, generation, scoped, computers),
        targets={
            key: found[key] if key in found else read_targets(store, generation, entry.partition)
            for key, entry in manifest.rules.items()
        },
        memory={key: rule_memory(store, key) for key in manifest.rules},
    )


async def _plan(
    settings: Settings,
    store: Store,
    immy: ImmyClient,
    manifest: Manifest,
    generation: str,
    now: datetime,
    inputs: _Inputs,
    scope: frozenset[int] | None = None,
) -> list[RuleTags]:
    """Every rule's plan against ImmyBot's tags and the tenants and computers the generation
    holds (for an event's run, `scope` set, ImmyBot's tenants as they are now: the generation's
    were read by the last sync, before its own tag writes)."""
    found: list[ImmyTenant] = (
        await asyncio.to_thread(read_tenants, store, generation)
        if scope is None
        else await immy.tenants()
    )
    tenants = {t.id: t for t in found}
    tags = {t.name.casefold(): t for t in await immy.tags()}
    plans: list[RuleTags] = []
    for key, entry in manifest.rules.items():
        rule, memory = entry.rule, inputs.memory[key]
        plans.append(
            plan_rule(
                rule,
                inputs.targets[key],
                tenants,
                tags,
                prefix=settings.immy_tag_prefix,
                max_drop=settings.sync_max_drop,
                approved=memory.tenants,
                lost_on=memory.lost_on,
                today=now.date(),
                generation=generation,
                now=now,
                fleet=inputs.fleet,
                approved_computers=memory.computers,
            )
        )
    return plans


def _fleet(
    store: Store, generation: str, scoped: bool, computers: Sequence[ImmyComputer] | None
) -> Fleet:
    """The generation's computers (their tags say who carries what), and where they are when a
    site-scoped rule needs it."""
    every = read_computers(store, generation) if computers is None else computers
    found = read_site_links(store, generation) if scoped else None
    return Fleet({c.id: c for c in every}, found[1] if found is not None else None)


def _made(
    result: ApplyResult,
    changes: Sequence[TagChange],
    done: Done,
    error: str | None,
    *,
    requests: int,
) -> ApplyResult:
    """The result counting only the writes ImmyBot accepted (`done`)."""
    return result.model_copy(
        update={
            "requests": requests,
            "error": error,
            "added": sum(len(c.add) for c in changes if (c.tag, c.level, "add") in done),
            "removed": sum(len(c.remove) for c in changes if (c.tag, c.level, "remove") in done),
            "created": [c.tag for c in changes if c.create and (c.tag, c.level, "create") in done],
        }
    )


def _summary(
    result: ApplyResult, plans: Sequence[RuleTags], immybot_requests: int
) -> dict[str, Any]:
    """What the run records as `immy_tags`: the result and per rule counts."""
    summary = result.model_dump(mode="json")
    # Everything this run's client asked ImmyBot, its reads included (the benchmark's figure).
    summary["immybot_requests"] = immybot_requests
    summary["rules"] = {
        p.software: {
            "add": sum(len(c.add) for c in p.changes),
            "remove": sum(len(c.remove) for c in p.changes),
            **({"level": p.level} if p.level != "tenant" else {}),
            **({"held": p.held.model_dump()} if p.held else {}),
            **({"held_cleanup": p.held_cleanup.model_dump()} if p.held_cleanup else {}),
            **({"problem": p.problem} if p.problem else {}),
            **({"unplaced": len(p.unplaced)} if p.unplaced else {}),
        }
        for p in plans
    }
    return summary


async def _make(immy: ImmyClient, changes: list[TagChange], done: Done) -> str | None:
    """Create missing tags, then add, then remove; stop at the first ImmyBot error."""
    ids = {c.tag: c.tag_id for c in changes if c.tag_id is not None}
    try:
        for change in changes:
            if change.create:
                created = await immy.create_tag(
                    change.tag,
                    tag_description(
                        change.tag.removesuffix(OFFBOARDING_SUFFIX),
                        offboarding=change.tag.endswith(OFFBOARDING_SUFFIX),
                    ),
                )
                ids[change.tag] = created.id
                done.add((change.tag, change.level, "create"))
        for direction, groups in write_phases(changes):
            for (level, entity_ids), names in groups.items():
                write = _writer(immy, level, direction)
                await write(list(entity_ids), [ids[n] for n in names])
                done.update((n, level, direction) for n in names)
    except ImmyError as error:
        log.warning("ImmyBot tag write failed; the rest is left for the next run: %s", error)
        return str(error)
    return None


def _writer(
    immy: ImmyClient, level: Level, direction: str
) -> Callable[[list[int], list[int]], Awaitable[int]]:
    """The client call that adds (or removes) tags on tenants (or computers)."""
    if level == "computer":
        return immy.add_computer_tags if direction == "add" else immy.remove_computer_tags
    return immy.add_tenant_tags if direction == "add" else immy.remove_tenant_tags
