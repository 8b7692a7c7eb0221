"""`GET /api/assets/plan`: the last asset run's plan, for every client or one, with names.

The current generation's plan once its asset run stored it; until then the last one stored,
marked `current: false`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.api.names import NULL_NAME, Names, current_names
from shared.api.problems import ApiError, problem
from shared.api.replies import Reply, json_reply
from shared.core.asset_plan import ClientAssetPlan
from shared.store.repository import Store
from shared.sync.asset_store import AssetRunSummary, latest_plan


class NamedClientPlan(ClientAssetPlan):
    """One client's plan, with the client's and its tenant's names."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    client_name: str | None = Field(description=NULL_NAME)
    tenant_name: str | None = Field(description=NULL_NAME)


class AssetPlanAnswer(BaseModel):
    """`GET /api/assets/plan`: the last asset run's summary and its plan per client."""

    current: bool = Field(
        description="Whether the plan is of the generation that serves now. false: that "
        "generation has no plan yet (its asset run, which follows the swap, has not stored one; "
        "generations that HaloPSA events or an approval publish get none), so this is the last "
        "plan stored, of generation `summary.generation`."
    )
    summary: AssetRunSummary
    clients: list[NamedClientPlan]


def plan_client(client_id: str | None) -> int | None:
    """The `client_id` asked for (None: every client), or a 400."""
    raw = (client_id or "").strip()
    if raw and not (raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31):
        raise ApiError(problem(400, "bad-query", "client_id must be a positive integer"))
    return int(raw) if raw else None


def asset_plan_reply(store: Store, client_id: int | None) -> Reply:
    """The plan of the current generation, else the last one stored (of one client with
    `client_id`), or a 404 if no stored generation has one."""
    pointer = store.current()
    view = latest_plan(store, pointer.generation, client_id) if pointer else None
    if view is None:
        raise ApiError(
            problem(404, "no-asset-plan", "no asset plan yet: set ASSET_SYNC and let a sync run")
        )
    names = current_names(store) if view.clients else Names()
    return json_reply(
        AssetPlanAnswer(
            current=pointer is not None and view.generation == pointer.generation,
            summary=view.summary,
            clients=[
                NamedClientPlan(
                    **plan.model_dump(),
                    client_name=names.client(plan.client_id),
                    tenant_name=names.tenant(plan.tenant_id),
                )
                for plan in view.clients
            ],
        )
    )
