"""One ImmyBot tag per rule, carried by exactly the tenants the rule targets.

ImmyBot deploys natively to a Tag target (the computers of the tenants carrying the tag), so keeping
`IMMY_TAG_PREFIX + software` equal to a rule's mapped targets lets an admin point a deployment at it
with no script. After a generation becomes current (never from a held one) the sync calls
`apply_immy_tags`, which, per `IMMY_TAGS`:

- `off`: does nothing;
- `plan`: computes the changes (tags to create, tenants to add, tenants to remove) and records them
  for `GET /api/immybot/tags`, writing nothing to ImmyBot;
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
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from pydantic import BaseModel, ConfigDict, Field

from shared.core.rules import Rule, normalise
from shared.core.targets import Target
from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.records.immybot import ImmyTag, ImmyTenant
from shared.settings import Settings
from shared.store.generations import read_manifest, read_targets, read_tenants
from shared.store.repository import Store, StoreError, check_key, decode_data, encode_data

log = logging.getLogger("halo_immy.immy_tags")

MANAGED_MARKER = "[halo-immy]"
OFFBOARDING_SUFFIX = " (offboarding)"
STATE_TABLE = "ImmyTags"
OFFBOARD_TABLE = "ImmyOffboarding"
_RULE_PK = "rule"
_APPROVAL_PK = "approval"
SITE_SCOPE_NOTE = "site scope: not tagged"


class TagMode(StrEnum):
    """`IMMY_TAGS`."""

    OFF = "off"
    PLAN = "plan"
    APPLY = "apply"


def tag_name(prefix: str, software: str) -> str:
    """The tag of a rule."""
    return f"{prefix}{software}"


def offboarding_tag_name(prefix: str, software: str) -> str:
    """The tag of a rule's recently offboarded tenants."""
    return f"{prefix}{software}{OFFBOARDING_SUFFIX}"


def tag_description(software: str, *, offboarding: bool = False) -> str:
    """The description that marks a tag as managed by halo-immy (and tells a human why)."""
    what = (
        f"tenants that recently lost {software} in HaloPSA billing (uninstall target)"
        if offboarding
        else f"tenants entitled to {software} by HaloPSA billing"
    )
    return f"{MANAGED_MARKER} Kept equal to the {what} by halo-immy; edits are overwritten."


def is_managed(tag: ImmyTag) -> bool:
    """Whether halo-immy created (and so may change) this tag."""
    return tag.description.startswith(MANAGED_MARKER)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class TagChange(_Model):
    """The changes one tag needs: created if missing, tenants added and removed."""

    tag: str
    tag_id: int | None = Field(description="Null while the tag does not exist yet.")
    create: bool = False
    add: list[int] = Field(default_factory=list, description="Tenant ids to tag.")
    remove: list[int] = Field(default_factory=list, description="Tenant ids to untag.")


class HeldRemoval(_Model):
    """A removal the guard keeps waiting for approval, with its numbers."""

    tag: str
    carrying: int
    should: int
    removing: int
    share: float
    tenants: list[int]


class SiteScoped(_Model):
    """A client of a site-scoped rule: tags are per tenant, so it is not tagged."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    note: str = SITE_SCOPE_NOTE


class ApplyResult(_Model):
    """What one run did (or, in plan mode, would have done) to ImmyBot's tags."""

    at: datetime
    mode: TagMode
    generation: str
    added: int = 0
    removed: int = 0
    created: list[str] = Field(default_factory=list)
    requests: int = Field(default=0, description="Tag requests sent (reads and writes).")
    minimum_requests: int = Field(
        default=0, description="The fewest requests the same changes need."
    )
    held: list[str] = Field(default_factory=list, description="Tags whose removal is held.")
    error: str | None = None


class RuleTags(_Model):
    """`GET /api/immybot/tags`, per rule: the tag, who carries it, who should, and the plan."""

    software: str
    tag: str | None = Field(description="Null for a site-scoped rule (not tagged).")
    tag_id: int | None
    carrying: list[int] = Field(description="Tenants carrying the tag when the run read them.")
    should: list[int] = Field(description="The rule's mapped target tenants.")
    changes: list[TagChange] = Field(description="The planned changes (rule and offboarding tag).")
    held: HeldRemoval | None = None
    offboarding_tag: str | None = None
    offboarding: list[int] = Field(
        default_factory=list, description="Tenants that should carry the offboarding tag."
    )
    site_scope: list[SiteScoped] = Field(default_factory=list)
    problem: str | None = None
    generation: str
    planned_at: datetime
    last_apply: ApplyResult | None = None


class TagsView(_Model):
    """`GET /api/immybot/tags`."""

    mode: TagMode
    prefix: str
    rules: list[RuleTags]


# -- planning (pure) ---------------------------------------------------------------------------


def plan_rule(
    rule: Rule,
    targets: Sequence[Target],
    tenants: Mapping[int, ImmyTenant],
    tags: Mapping[str, ImmyTag],
    *,
    prefix: str,
    max_drop: float,
    approved: set[int],
    lost_on: Mapping[int, date],
    today: date,
    generation: str,
    now: datetime,
) -> RuleTags:
    """The tag changes one rule needs; `tags` by case-folded name, `lost_on` its offboarding
    records (tenant -> the day it lost the tag), `approved` tenants whose removal an admin
    approved."""
    base: dict[str, Any] = {
        "software": rule.software,
        "generation": generation,
        "planned_at": now,
    }
    if rule.site_ids is not None:
        scoped = [
            SiteScoped(
                client_id=t.client_id, client_name=t.client_name, immy_tenant_id=t.immy_tenant_id
            )
            for t in targets
        ]
        return RuleTags(**base, tag=None, tag_id=None, carrying=[], should=[], changes=[],
                        site_scope=scoped)  # fmt: skip
    name = tag_name(prefix, rule.software)
    should = {t.immy_tenant_id for t in targets if t.immy_tenant_id in tenants}
    tag = tags.get(name.casefold())
    if tag is not None and not is_managed(tag):
        return RuleTags(
            **base,
            tag=name,
            tag_id=tag.id,
            carrying=sorted(_carriers(tag, tenants)),
            should=sorted(x for x in should if x is not None),
            changes=[],
            problem=f"a tag named {tag.name!r} exists but halo-immy did not create it (its "
            f"description lacks {MANAGED_MARKER}); it is left alone: rename it, or add the marker",
        )
    wanted = {x for x in should if x is not None}
    carrying = _carriers(tag, tenants) if tag else set()
    add, remove = wanted - carrying, carrying - wanted
    held = None
    share = len(remove) / len(carrying) if carrying else 0.0
    if remove and (share > max_drop or not wanted) and not remove <= approved:
        held = HeldRemoval(
            tag=name,
            carrying=len(carrying),
            should=len(wanted),
            removing=len(remove),
            share=round(share, 4),
            tenants=sorted(remove),
        )
        remove = set()
    changes = []
    if tag is None or add or remove:
        changes.append(
            TagChange(
                tag=name,
                tag_id=tag.id if tag else None,
                create=tag is None,
                add=sorted(add),
                remove=sorted(remove),
            )
        )
    off_name, offboarding = None, set()
    if rule.offboard_days is not None:
        off_name = offboarding_tag_name(prefix, rule.software)
        since = today - timedelta(days=rule.offboard_days)
        offboarding = {t for t, day in lost_on.items() if day >= since} | remove
        offboarding = {t for t in offboarding if t in tenants} - wanted
        off_tag = tags.get(off_name.casefold())
        if off_tag is not None and not is_managed(off_tag):
            off_name, offboarding = None, set()
        else:
            off_carrying = _carriers(off_tag, tenants) if off_tag else set()
            off_add, off_remove = offboarding - off_carrying, off_carrying - offboarding
            # Created only once someone needs it: an unused uninstall target is just noise.
            if off_add or off_remove:
                changes.append(
                    TagChange(
                        tag=off_name,
                        tag_id=off_tag.id if off_tag else None,
                        create=off_tag is None,
                        add=sorted(off_add),
                        remove=sorted(off_remove),
                    )
                )
    return RuleTags(
        **base,
        tag=name,
        tag_id=tag.id if tag else None,
        carrying=sorted(carrying),
        should=sorted(wanted),
        changes=changes,
        held=held,
        offboarding_tag=off_name,
        offboarding=sorted(offboarding),
    )


def _carriers(tag: ImmyTag | None, tenants: Mapping[int, ImmyTenant]) -> set[int]:
    if tag is None:
        return set()
    return {t.id for t in tenants.values() if tag.id in t.tag_ids}


def write_phases(
    changes: Sequence[TagChange],
) -> list[tuple[str, dict[tuple[int, ...], list[str]]]]:
    """The writes in order: rule tags added, then every removal, then offboarding tags added.

    Adds first, so an error mid-way never leaves a tenant without software it should have; the
    offboarding adds last, so a tenant whose removal failed never carries both the install and the
    uninstall tag.
    """
    rule_tags = [c for c in changes if not c.tag.endswith(OFFBOARDING_SUFFIX)]
    offboarding = [c for c in changes if c.tag.endswith(OFFBOARDING_SUFFIX)]
    phases = [
        ("add", write_groups(rule_tags, "add")),
        ("remove", write_groups(changes, "remove")),
        ("add", write_groups(offboarding, "add")),
    ]
    return [(direction, groups) for direction, groups in phases if groups]


def write_groups(changes: Iterable[TagChange], direction: str) -> dict[tuple[int, ...], list[str]]:
    """Tenants -> the tags they all get (or lose): one request per distinct set of tenants."""
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for change in changes:
        tenants = tuple(change.add if direction == "add" else change.remove)
        if tenants:
            groups[tenants].append(change.tag)
    return groups


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
    tenants = {t.id: t for t in await asyncio.to_thread(read_tenants, store, generation)}
    started = immy.requests
    tags = {t.name.casefold(): t for t in await immy.tags()}
    today = now.date()
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
                today=today,
                generation=generation,
                now=now,
            )
        )
    changes = [c for p in plans for c in p.changes]
    minimum = (
        1 + sum(c.create for c in changes) + sum(len(groups) for _, groups in write_phases(changes))
    )
    result = ApplyResult(
        at=now,
        mode=mode,
        generation=generation,
        added=sum(len(c.add) for c in changes),
        removed=sum(len(c.remove) for c in changes),
        created=[c.tag for c in changes if c.create],
        held=[p.held.tag for p in plans if p.held],
        minimum_requests=minimum,
    )
    done: set[tuple[str, str]] = set()
    if mode is TagMode.APPLY:
        error = await _make(immy, changes, done)
        result = result.model_copy(
            update={
                "requests": immy.requests - started,
                "error": error,
                "added": sum(len(c.add) for c in changes if (c.tag, "add") in done),
                "removed": sum(len(c.remove) for c in changes if (c.tag, "remove") in done),
                "created": [c.tag for c in changes if c.create and (c.tag, "create") in done],
            }
        )
        await asyncio.to_thread(_remember, store, manifest.rules.keys(), plans, done, today)
    else:
        result = result.model_copy(update={"requests": immy.requests - started})
    await asyncio.to_thread(
        _save, store, plans, result, [e.rule.key for e in manifest.rules.values()]
    )
    summary = result.model_dump(mode="json")
    # Everything this run's client asked ImmyBot, its reads included (the benchmark's figure).
    summary["immybot_requests"] = immy.requests
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


def tags_view(store: Store, settings: Settings) -> TagsView:
    """Every rule's tag, carriers, targets, planned changes and last result, as last recorded."""
    entities = store.table(STATE_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": _RULE_PK}
    )
    rules = [RuleTags.model_validate_json(decode_data(e)) for e in entities]
    return TagsView(
        mode=TagMode(settings.immy_tags),
        prefix=settings.immy_tag_prefix,
        rules=sorted(rules, key=lambda r: normalise(r.software)),
    )


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
