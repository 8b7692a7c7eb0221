"""The JSON the HTTP API answers with: one pydantic model per response, also the OpenAPI source."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.core.catalog import ContractTypeEntry, ItemEntry
from shared.core.rules import FieldChange, Rule
from shared.core.site_links import Unplaced
from shared.core.targets import Target, TargetCounts, UnmappedClient
from shared.records.immybot import ImmyComputer


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class TargetsResponse(_Out):
    """`GET /api/targets`: who is entitled to a software (or a contract type, or an item), and why."""

    software: str | None = Field(description="The rule's software; null for an ad hoc query.")
    query: dict[str, str] = Field(description="The query as understood.")
    generation: str = Field(description="The snapshot generation answered from (also the ETag).")
    synced_at: datetime
    resolved_on: date = Field(description="The day coverage was evaluated for.")
    rule: Rule
    counts: TargetCounts
    immybot_configured: bool = Field(description="False: targets carry no ImmyBot tenants.")
    unmapped: list[UnmappedClient] = Field(
        description="Covered clients with no ImmyBot tenant: deploy-able nowhere until mapped."
    )
    computers: dict[str, list[ImmyComputer]] | None = Field(
        default=None,
        description="With expand=computers: each target tenant's computers, by tenant id; for a "
        "site-scoped rule only those at the targets' sites (by the asset each is matched to).",
    )
    computer_sites: dict[str, int] | None = Field(
        default=None,
        description="With expand=computers on a site-scoped rule: the HaloPSA site of each "
        "computer listed, by computer id.",
    )
    unplaced: list[Unplaced] | None = Field(
        default=None,
        description="With expand=computers on a site-scoped rule: computers of the target "
        "tenants whose site is unknown, and why (not tagged, not listed in computers).",
    )
    targets: list[Target] = Field(description="Always the last member of the answer.")


class CatalogResponse(_Out):
    """`GET /api/catalog`: contract types and recurring items in the current snapshot."""

    generation: str
    synced_at: datetime
    contract_types: list[ContractTypeEntry]
    items: list[ItemEntry]
    rule_warnings: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Per rule (software), what it does differently in ImmyBot, e.g. a site scope.",
    )


class RuleView(_Out):
    """A stored rule, how many targets it has now, and what looks wrong with it."""

    rule: Rule
    targets: int | None = Field(
        description="Targets in the current generation; null before a sync."
    )
    warnings: list[str] = Field(
        description=(
            "Names HaloPSA does not currently carry, with suggestions; in a write's answer also "
            "ids accepted unconfirmed (perhaps newer than the snapshot, or nothing to check "
            "against)."
        )
    )


class RuleWritten(RuleView):
    """`PUT` or `PATCH /api/rules/{software}`: the rule as stored, and what the edit took from
    the rule before it (a PUT replaces the whole rule: a member it leaves out is dropped)."""

    replaced: list[FieldChange] = Field(
        description="Members the edit dropped or changed, with their values before; empty for "
        "a new rule."
    )


class RulesImported(_Out):
    """`PUT /api/rules`: the rule set as imported."""

    created: list[str]
    replaced: list[str]
    deleted: list[str]
    rules: list[RuleView]
