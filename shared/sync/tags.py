"""One ImmyBot tag per rule, carried by exactly the tenants the rule targets.

ImmyBot deploys natively to a Tag target (the computers of the tenants carrying the tag), so keeping
`IMMY_TAG_PREFIX + software` equal to a rule's mapped targets lets an admin point a deployment at it
with no script. After a generation becomes current (never from a held one) the sync calls
`apply_immy_tags`, which, per `IMMY_TAGS`:

- `off`: does nothing;
- `plan`: computes the changes (tags to create, tenants to add, tenants to remove) and records them
  for `GET /api/immybot/tags` (`shared.sync.tags_view`), writing nothing to ImmyBot;
- `apply`: records the same plan and makes it, in as few requests as ImmyBot's API allows
  (`POST /api/v1/tenants/add-tags` takes lists of tenant and tag ids, so one request per distinct
  set of tenants and direction).

Only tags whose description starts with `MANAGED_MARKER` are touched; a same-named tag without it
is reported and left alone. Removals are guarded like the snapshot: removing more than
`SYNC_MAX_DROP` of a tag's tenants, or all of them, is held (adds still go ahead) until an admin
approves it with `POST /api/sync/approve?tag=<software>`; the approved removal is made by the next
run. An ImmyBot error mid-way stops the run's writes; the next run plans again from ImmyBot's state
and converges; a run with nothing to change sends no write.

Offboarding: with `offboard_days` on a rule, a tenant taken off the rule's tag is remembered (one
`ImmyOffboarding` entity per rule and tenant) and carries `<tag> (offboarding)` for that many days,
so an uninstall deployment can target it. Site-scoped rules cannot be expressed as tenant tags:
their clients are listed as "site scope: not tagged".
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.core.generation import Manifest
from shared.core.rules import normalise
from shared.core.tag_plan import (
    OFFBOARDING_SUFFIX,
    ApplyResult,
    HeldRemoval,
    RuleTags,
    TagChange,
    TagMode,
    minimum_requests,
    plan_rule,
    tag_description,
    write_phases,
)
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.settings import Settings
from shared.store.base import StoreError, check_key, decode_data, encode_data
from shared.store.generations import read_manifest, read_targets, read_tenants
from shared.store.repository import Store

log = logging.getLogger("halo_immy.immy_tags")

STATE_TABLE = "ImmyTags"
OFFBOARD_TABLE = "ImmyOffboarding"
_RULE_PK = "rule"
_APPROVAL_PK = "approval"


# -- the run -----------------------------------------------------------------------------------


async def apply_immy_tags(
    settings: Settings, store: Store, immy: ImmyClient, generation: str, now: datetime
) -> dict[str, Any]:
    """Plan (and with `IMMY_TAGS=apply` make) every rule's tag changes for a current generation.

    Never raises: the generation is already serving, so a failure here is reported (in the
    returned dict, which the run records as `immy_tags`) and left for the next run.
    """
    mode = TagMode(settings.immy_tags)
    if mode is TagMode.OFF:
        return {"mode": str(mode)}
    try:
        return await _run(settings, store, immy, generation, now, mode)
    except (ImmyError, StoreError) as error:
        log.warning("ImmyBot tags not reconciled: %s", error)
        return {"mode": str(mode), "error": str(error)}
    except Exception as error:
        log.exception("ImmyBot tags failed unexpectedly")
        return {"mode": str(mode), "error": f"{type(error).__name__}: {str(error)[:300]}"}


async def _run(
    settings: Settings,
    store: Store,
    immy: ImmyClient,
    generation: str,
    now: datetime,
    mode: TagMode,
) -> dict[str, Any]:
    manifest, _ = await asyncio.to_thread(read_manifest, store, generation)
    if not manifest.immybot.configured or manifest.immybot.note:
        # Tenants carried over from an older generation say nothing about today's tags.
        return {"mode": str(mode), "skipped": "ImmyBot's tenants were not read by this run"}
    started = immy.requests
    plans = await _plan(settings, store, immy, manifest, generation, now)
    changes = [c for p in plans for c in p.changes]
    result = ApplyResult(
        at=now,
        mode=mode,
        generation=generation,
        added=sum(len(c.add) for c in changes),
        removed=sum(len(c.remove) for c in changes),
        created=[c.tag for c in changes if c.create],
        held=[p.held.tag for p in plans if p.held],
        minimum_requests=minimum_requests(changes),
    )
    if mode is TagMode.APPLY:
        done: set[tuple[str, str]] = set()
        error = await _make(immy, changes, done)
        result = _made(result, changes, done, error, requests=immy.requests - started)
        await asyncio.to_thread(_remember, store, manifest.rules.keys(), plans, done, now.date())
    else:
        result = result.model_copy(update={"requests": immy.requests - started})
    await asyncio.to_thread(
        _save, store, plans, result, [e.rule.key for e in manifest.rules.values()]
    )
    return _summary(result, plans, immy.requests)


async def _plan(
    settings: Settings,
    store: Store,
    immy: ImmyClient,
    manifest: Manifest,
    generation: str,
    now: datetime,
) -> list[RuleTags]:
    """Every rule's plan against ImmyBot's tags and the tenants the generation holds."""
    tenants = {t.id: t for t in await asyncio.to_thread(read_tenants, store, generation)}
    tags = {t.name.casefold(): t for t in await immy.tags()}
    plans: list[RuleTags] = []
    for entry in manifest.rules.values():
        rule = entry.rule
        targets = await asyncio.to_thread(read_targets, store, generation, entry.partition)
        approved, lost_on = await asyncio.to_thread(_rule_memory, store, rule.key)
        plans.append(
            plan_rule(
                rule,
                targets,
                tenants,
                tags,
                prefix=settings.immy_tag_prefix,
                max_drop=settings.sync_max_drop,
                approved=approved,
                lost_on=lost_on,
                today=now.date(),
                generation=generation,
                now=now,
            )
        )
    return plans


def _made(
    result: ApplyResult,
    changes: Sequence[TagChange],
    done: set[tuple[str, str]],
    error: str | None,
    *,
    requests: int,
) -> ApplyResult:
    """The result counting only the writes ImmyBot accepted (`done`)."""
    return result.model_copy(
        update={
            "requests": requests,
            "error": error,
            "added": sum(len(c.add) for c in changes if (c.tag, "add") in done),
            "removed": sum(len(c.remove) for c in changes if (c.tag, "remove") in done),
            "created": [c.tag for c in changes if c.create and (c.tag, "create") in done],
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
            **({"held": p.held.model_dump()} if p.held else {}),
            **({"problem": p.problem} if p.problem else {}),
            **({"site_scope": len(p.site_scope)} if p.site_scope else {}),
        }
        for p in plans
    }
    return summary


async def _make(
    immy: ImmyClient, changes: list[TagChange], done: set[tuple[str, str]]
) -> str | None:
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
                done.add((change.tag, "create"))
        for direction, groups in write_phases(changes):
            for tenants, names in groups.items():
                tag_ids = [ids[n] for n in names]
                if direction == "add":
                    await immy.add_tenant_tags(list(tenants), tag_ids)
                else:
                    await immy.remove_tenant_tags(list(tenants), tag_ids)
                done.update((n, direction) for n in names)
    except ImmyError as error:
        log.warning("ImmyBot tag write failed; the rest is left for the next run: %s", error)
        return str(error)
    return None


# -- storage -----------------------------------------------------------------------------------


def _rule_memory(store: Store, rule_key: str) -> tuple[set[int], dict[int, date]]:
    """A rule's approved removal (tenant ids) and offboarding records (tenant -> lost on)."""
    approved: set[int] = set()
    try:
        entity = store.table(STATE_TABLE).get_entity(_APPROVAL_PK, check_key(rule_key))
        approved = set(json.loads(decode_data(entity)))
    except ResourceNotFoundError:
        pass
    rows = store.table(OFFBOARD_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": check_key(rule_key)}
    )
    lost_on = {int(r["RowKey"]): date.fromisoformat(str(r["lost_on"])) for r in rows}
    return approved, lost_on


def _remember(
    store: Store,
    rule_keys: Iterable[str],
    plans: list[RuleTags],
    done: set[tuple[str, str]],
    today: date,
) -> None:
    """After writes: record who lost a rule's tag, forget who regained it or left the window,
    and drop approvals that were used."""
    table = store.table(OFFBOARD_TABLE)
    state = store.table(STATE_TABLE)
    by_software = {normalise(p.software): p for p in plans}
    for key in rule_keys:
        plan = by_software.get(key)
        if plan is None or plan.tag is None:
            continue
        rule_change = next((c for c in plan.changes if c.tag == plan.tag), None)
        removed = rule_change.remove if rule_change and (plan.tag, "remove") in done else []
        if removed:
            try:
                state.delete_entity(_APPROVAL_PK, check_key(key))
            except ResourceNotFoundError:
                pass
        if plan.offboarding_tag is None:
            continue
        existing = {
            int(r["RowKey"])
            for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": key})
        }
        for tenant in removed:
            if tenant not in existing:
                table.upsert_entity(
                    {"PartitionKey": key, "RowKey": f"{tenant:010d}", "lost_on": today.isoformat()},
                    mode=UpdateMode.REPLACE,
                )
        keep = set(plan.offboarding) | set(removed)
        for tenant in existing - keep:
            table.delete_entity(key, f"{tenant:010d}")


def _save(store: Store, plans: list[RuleTags], result: ApplyResult, keys: list[str]) -> None:
    table = store.table(STATE_TABLE)
    for plan in plans:
        document = plan.model_copy(update={"last_apply": result}).model_dump_json()
        try:
            data = encode_data(document)
        except ValueError:
            # Tens of thousands of tenants: keep the plan and the numbers, drop the long lists.
            slim = plan.model_copy(update={"carrying": [], "should": [], "last_apply": result})
            data = encode_data(slim.model_dump_json())
        table.upsert_entity(
            {"PartitionKey": _RULE_PK, "RowKey": check_key(normalise(plan.software)), **data},
            mode=UpdateMode.REPLACE,
        )
    wanted = set(keys)
    for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": _RULE_PK}):
        if entity["RowKey"] not in wanted:
            table.delete_entity(_RULE_PK, entity["RowKey"])


def recorded_plans(store: Store) -> list[RuleTags]:
    """Every rule's tag, carriers, targets, planned changes and last result, as last recorded
    (`shared.sync.tags_view` adds the numbers per client for `GET /api/immybot/tags`)."""
    entities = store.table(STATE_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": _RULE_PK}
    )
    rules = [RuleTags.model_validate_json(decode_data(e)) for e in entities]
    return sorted(rules, key=lambda r: normalise(r.software))


def approve_tag_removal(store: Store, software: str) -> HeldRemoval:
    """Approve a rule's held tag removal; the next run makes it. StoreError if none is held."""
    key = normalise(software)
    try:
        entity = store.table(STATE_TABLE).get_entity(_RULE_PK, check_key(key))
    except (ResourceNotFoundError, ValueError):
        raise StoreError(f"no held tag removal for {software!r}") from None
    plan = RuleTags.model_validate_json(decode_data(entity))
    if plan.held is None:
        raise StoreError(f"no held tag removal for {software!r}")
    store.table(STATE_TABLE).upsert_entity(
        {
            "PartitionKey": _APPROVAL_PK,
            "RowKey": key,
            **encode_data(json.dumps(plan.held.tenants)),
        },
        mode=UpdateMode.REPLACE,
    )
    return plan.held
