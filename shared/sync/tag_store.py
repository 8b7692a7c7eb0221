"""What the ImmyBot tag runs keep in Table Storage: each rule's last plan (`GET /api/immybot/tags`),
approvals of held removals, and who lost a rule's tag when (for the offboarding tag).

Tables: `ImmyTags` (partition `rule`: one plan per rule; partition `approval`: the ids an admin
approved for removal, `{"tenants": [...], "computers": [...]}`, older rows a bare list of tenant
ids) and `ImmyOffboarding` (one entity per rule and tenant that lost the rule's tag, `lost_on`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from pydantic import BaseModel, ConfigDict, Field

from shared.core.changes import LastChange, last_per_client
from shared.core.rules import normalise
from shared.core.tag_base import ApplyResult, HeldRemoval, RuleTags, TagMode
from shared.core.tag_plan import with_computer_part
from shared.settings import Settings
from shared.store.base import check_key, decode_data, encode_data
from shared.store.changes import iter_changes
from shared.store.repository import Store
from shared.sync.retention import NothingHeld
from shared.sync.tags_view import TagClient, rule_numbers

STATE_TABLE = "ImmyTags"
OFFBOARD_TABLE = "ImmyOffboarding"
_RULE_PK = "rule"
_APPROVAL_PK = "approval"

# What a run did: (tag, level, "create" | "add" | "remove") for every write ImmyBot accepted.
Done = set[tuple[str, str, str]]


class RuleTagsView(RuleTags):
    """A rule's tag plan as last recorded, with each client's last change from the change log
    and each target client's numbers from the current generation."""

    last_changes: list[LastChange] = Field(
        default_factory=list,
        description="Per client (and its tenant), its latest change of this rule in the change "
        "log (CHANGES_KEEP_DAYS), newest first: why a tenant is gaining or losing the tag.",
    )
    numbers_generation: str | None = Field(
        default=None,
        description="The generation the clients' numbers come from (the current one); null when "
        "none serves or the rule is not in it.",
    )
    clients: list[TagClient] = Field(
        default_factory=list,
        description="The rule's targets with billed, targeted and installed (meanings as in "
        "GET /api/reconciliation).",
    )


class TagsView(BaseModel):
    """`GET /api/immybot/tags`."""

    model_config = ConfigDict(frozen=True)

    mode: TagMode
    prefix: str
    rules: list[RuleTagsView]


class TagApproval(BaseModel):
    """`POST /api/sync/approve?tag=SOFTWARE`: the held removals approved (the next run makes
    them)."""

    model_config = ConfigDict(frozen=True)

    software: str
    approved: list[HeldRemoval]


@dataclass(frozen=True, slots=True)
class RuleMemory:
    """A rule's approved removals (tenant and computer ids) and offboarding records."""

    tenants: set[int]
    computers: set[int]
    lost_on: dict[int, date]


def rule_memory(store: Store, rule_key: str) -> RuleMemory:
    """What the store remembers for one rule."""
    approved: dict[str, list[int]] = {}
    entity = store.existing_row(STATE_TABLE, _APPROVAL_PK, check_key(rule_key))
    if entity is not None:
        stored = json.loads(decode_data(entity))
        approved = {"tenants": stored} if isinstance(stored, list) else stored
    rows = store.existing_rows(OFFBOARD_TABLE, "PartitionKey eq @pk", pk=check_key(rule_key))
    lost_on = {int(r["RowKey"]): date.fromisoformat(str(r["lost_on"])) for r in rows}
    return RuleMemory(set(approved.get("tenants", [])), set(approved.get("computers", [])), lost_on)


def remember(
    store: Store,
    rule_keys: Iterable[str],
    plans: list[RuleTags],
    done: Done,
    today: date,
    forget_approvals: bool = True,
) -> None:
    """After writes: drop approvals whose removals are all made (not after an event's run: it
    made part of the removal), record who lost a rule's tag, forget who regained it or left the
    offboarding window."""
    state = store.table(STATE_TABLE)
    by_software = {normalise(p.software): p for p in plans}
    for key in rule_keys:
        plan = by_software.get(key)
        if plan is None or plan.tag is None:
            continue
        removals = [c for c in plan.changes if c.tag == plan.tag and c.remove]
        made = [c for c in removals if (c.tag, c.level, "remove") in done]
        if forget_approvals and made and len(made) == len(removals):
            try:
                state.delete_entity(_APPROVAL_PK, check_key(key))
            except ResourceNotFoundError:
                pass
        if plan.offboarding_tag is not None:
            removed = [t for c in made if c.level == "tenant" for t in c.remove]
            _remember_offboarding(store, key, plan, removed, today)


def _remember_offboarding(
    store: Store, key: str, plan: RuleTags, removed: list[int], today: date
) -> None:
    table = store.table(OFFBOARD_TABLE)
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


def save_plans(store: Store, plans: list[RuleTags], result: ApplyResult, keys: list[str]) -> None:
    """Keep each rule's plan with the run's result; drop the plans of rules that are gone."""
    table = store.table(STATE_TABLE)
    for plan in plans:
        data = _encoded(plan.model_copy(update={"last_apply": result}))
        table.upsert_entity(
            {"PartitionKey": _RULE_PK, "RowKey": check_key(normalise(plan.software)), **data},
            mode=UpdateMode.REPLACE,
        )
    wanted = set(keys)
    for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": _RULE_PK}):
        if entity["RowKey"] not in wanted:
            table.delete_entity(_RULE_PK, entity["RowKey"])


def save_scoped_plans(
    store: Store, plans: list[RuleTags], result: ApplyResult, keys: list[str]
) -> None:
    """Keep an event's run's plans: each rule's tenant-level part as planned now, its
    computer-level part as the last full run stored it (an event's run reads only its tenants'
    computers and changes no computer tag). `keys` are every rule's (none is dropped here)."""
    table = store.table(STATE_TABLE)
    for plan in plans:
        row = check_key(normalise(plan.software))
        try:
            found = table.get_entity(_RULE_PK, row)
            stored: RuleTags | None = RuleTags.model_validate_json(decode_data(found))
        except ResourceNotFoundError:
            stored = None
        kept = with_computer_part(plan, stored).model_copy(update={"last_apply": result})
        table.upsert_entity(
            {"PartitionKey": _RULE_PK, "RowKey": row, **_encoded(kept)}, mode=UpdateMode.REPLACE
        )


def _encoded(plan: RuleTags) -> dict[str, Any]:
    try:
        return encode_data(plan.model_dump_json())
    except ValueError:
        # Tens of thousands of ids: keep the plan and the numbers, drop the long lists.
        slim = plan.model_copy(update={"carrying": [], "should": [], "unplaced": []})
        return encode_data(slim.model_dump_json())


def tags_view(store: Store, settings: Settings, now: datetime | None = None) -> TagsView:
    """Every rule's tag, carriers, targets, planned changes and last result, as last recorded,
    each client's last change of the rule (the whole change log, read once) and each target
    client's numbers (`shared.sync.tags_view`)."""
    entities = store.table(STATE_TABLE).query_entities(
        "PartitionKey eq @pk", parameters={"pk": _RULE_PK}
    )
    plans = [RuleTags.model_validate_json(decode_data(e)) for e in entities]
    since = (now or datetime.now(UTC)) - timedelta(days=settings.changes_keep_days)
    last = last_per_client(iter_changes(store, since)) if plans else {}
    numbers = rule_numbers(store, settings, (normalise(p.software) for p in plans))
    rules = []
    for plan in plans:
        key = normalise(plan.software)
        clients = numbers.clients.get(key)
        rules.append(
            RuleTagsView(
                **dict(plan),
                last_changes=last.get(key, []),
                numbers_generation=numbers.generation if clients is not None else None,
                clients=clients or [],
            )
        )
    return TagsView(
        mode=TagMode(settings.immy_tags),
        prefix=settings.immy_tag_prefix,
        rules=sorted(rules, key=lambda r: normalise(r.software)),
    )


def approve_tag_removal(store: Store, software: str) -> TagApproval:
    """Approve a rule's held tag removals (on tenants, computers or both); the next run makes
    them. StoreError if none is held."""
    key = normalise(software)
    try:
        entity = store.table(STATE_TABLE).get_entity(_RULE_PK, check_key(key))
    except (ResourceNotFoundError, ValueError):
        raise NothingHeld(f"no held tag removal for {software!r}") from None
    plan = RuleTags.model_validate_json(decode_data(entity))
    held = [h for h in (plan.held, plan.held_cleanup) if h is not None]
    if not held:
        raise NothingHeld(f"no held tag removal for {software!r}")
    approved = {
        "tenants": sorted({t for h in held for t in h.tenants}),
        "computers": sorted({c for h in held for c in h.computers}),
    }
    store.table(STATE_TABLE).upsert_entity(
        {"PartitionKey": _APPROVAL_PK, "RowKey": key, **encode_data(json.dumps(approved))},
        mode=UpdateMode.REPLACE,
    )
    return TagApproval(software=plan.software, approved=held)
