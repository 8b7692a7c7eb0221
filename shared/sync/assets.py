"""Asset population, one run: read, plan, guard, write, record. Called by the sync after a swap.

`ASSET_SYNC=plan` computes and stores the plan and writes nothing to HaloPSA; `apply` also writes.
The run reads HaloPSA's assets and users once each (paged), beside the ImmyBot computers and the
client mapping the sync already has, so it costs a handful of reads plus one request per
`ASSET_WRITE_BATCH` writes, all inside the sync's shared request budget.

Idempotency, and why an interrupted run cannot duplicate an asset:
- every run re-lists the assets before planning, so the plan starts from what HaloPSA holds, not
  from what an earlier run believes it wrote;
- every asset the app creates carries the computer's ImmyBot id in `ASSET_ID_FIELD`, and that id is
  the first thing matched: an asset created by a run that then died is found by the next run and
  refreshed or left alone, never created again (the name and serial steps catch it as well);
- a write that fails with a 5xx or a timeout may have been applied (in part: an array body is
  several assets), so it is never retried blindly: the run stops writing, records what it wrote and
  the error, and the next run's fresh listing shows which of that request's assets exist.
A run with nothing to change sends no write: refreshes compare before they write.

More than `ASSET_MAX_CREATES` creates in one run are held: nothing is written, the hold is kept in
`SyncState/assets_held`, and `POST /api/sync/approve` (the endpoint that releases held syncs)
approves it; the next run then writes up to the approved number of creates.

The plan is stored with the current generation (`shared.sync.asset_store`), so it lives and dies
with the generation it was computed against and `GET /api/assets/plan` reads it like any other
snapshot data. Beside it, in `plan` and `apply` alike, every run that listed the assets stores where
each matched computer is (`shared.store.site_links`: the matched asset's site): site-scoped rules
tag computers by it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shared.core.asset_plan import (
    AssetConfig,
    ClientAssetPlan,
    count_plan,
    create_body,
    plan_all,
    update_body,
)
from shared.core.mapping import MatchKind
from shared.core.site_links import SiteLink, link_sites
from shared.core.targets import Snapshot
from shared.halo.assets import list_assets, list_users, post_assets
from shared.halo.client import HaloClient
from shared.halo.errors import HaloAuthError, HaloError
from shared.records.halo import User
from shared.records.immybot import ImmyComputer
from shared.settings import Settings
from shared.store.repository import Store
from shared.store.site_links import write_site_links
from shared.sync.asset_hold import guard_creates, set_hold
from shared.sync.asset_store import AssetRunSummary, store_plan

log = logging.getLogger("halo_immy.assets")


def asset_config(settings: Settings) -> AssetConfig | None:
    """The asset configuration, or None when `ASSET_SYNC` is off (settings validate the rest)."""
    if settings.asset_sync == "off":
        return None
    assert settings.asset_type_id is not None and settings.asset_name_field is not None
    assert settings.asset_id_field is not None and settings.asset_marker_field is not None
    return AssetConfig(
        type_id=settings.asset_type_id,
        name_field=settings.asset_name_field,
        id_field=settings.asset_id_field,
        marker_field=settings.asset_marker_field,
        serial_field=settings.asset_serial_field,
        update_matched=settings.asset_update_matched,
    )


@dataclass(slots=True)
class _Progress:
    """What an asset run got to before it ended, however it ended."""

    written: dict[str, int] = field(
        default_factory=lambda: {"created": 0, "updated": 0, "linked": 0}
    )
    writes: int = 0
    attempted: bool = False
    reads: int = 0
    plans: list[ClientAssetPlan] = field(default_factory=list)


def mapped_clients(snapshot: Snapshot) -> dict[int, int]:
    """Active HaloPSA clients mapped to an ImmyBot tenant: client id -> tenant id. Every way a
    client maps counts (an explicit mapping, ImmyBot's own HaloPSA link, the Entra tenant, the
    name); ambiguous and unmapped clients have no tenant to take computers from."""
    mapped: dict[int, int] = {}
    for client_id, match in snapshot.matches.items():
        client = snapshot.clients.get(client_id)
        if client is None or client.inactive or match.tenant_id is None:
            continue
        if match.kind in (
            MatchKind.EXPLICIT,
            MatchKind.IMMYBOT_LINK,
            MatchKind.ENTRA_TENANT,
            MatchKind.NAME,
        ):
            mapped[client_id] = match.tenant_id
    return mapped


async def run_assets(
    settings: Settings,
    store: Store,
    halo: HaloClient,
    *,
    generation: str,
    snapshot: Snapshot,
    computers: Sequence[ImmyComputer] | None,
    run_id: str,
    now: Callable[[], datetime],
) -> AssetRunSummary | None:
    """Plan (and with `apply`, write) asset population; None when `ASSET_SYNC` is off.

    `computers` is None when this sync did not read ImmyBot (it carried the last generation's
    computers over): assets are then left alone rather than planned from stale data.

    Never raises for HaloPSA or storage trouble: the generation is already current, so a failure
    here is recorded in the summary, not turned into a failed sync.
    """
    config = asset_config(settings)
    if config is None:
        return None
    summary = AssetRunSummary(
        mode=settings.asset_sync,
        outcome="failed",
        run_id=run_id,
        generation=generation,
        computed_at=now(),
        max_creates=settings.asset_max_creates,
    )
    if not snapshot.immybot or computers is None:
        why = "ImmyBot is not configured" if not snapshot.immybot else "ImmyBot was not read"
        summary = summary.model_copy(update={"outcome": "skipped", "note": why})
        await _keep_plan(store, summary, [])
        return summary
    started = time.perf_counter()
    progress = _Progress()
    try:
        summary = await _plan_and_write(settings, store, halo, config, snapshot, computers,
                                        summary, progress)  # fmt: skip
    except HaloError as error:
        # Once a write went out, some of it may have been saved even if no request succeeded.
        outcome = "partial" if progress.attempted else "failed"
        summary = summary.model_copy(update={"outcome": outcome, "error": str(error)})
    except Exception as error:
        log.exception("asset run %s failed unexpectedly", run_id)
        summary = summary.model_copy(
            update={"outcome": "failed", "error": f"{type(error).__name__}: {str(error)[:300]}"}
        )
    summary = summary.model_copy(
        update={"written": progress.written, "writes": progress.writes, "reads": progress.reads}
    )
    await _keep_plan(store, summary, progress.plans)
    _log_run(summary, time.perf_counter() - started)
    return summary


async def _plan_and_write(
    settings: Settings,
    store: Store,
    halo: HaloClient,
    config: AssetConfig,
    snapshot: Snapshot,
    computers: Sequence[ImmyComputer],
    summary: AssetRunSummary,
    progress: _Progress,
) -> AssetRunSummary:
    """Read HaloPSA's assets and users, plan, then (in `apply`, unless held) write."""
    (listing, (users, user_pages, users_error)) = await asyncio.gather(
        list_assets(halo, config.type_id), _users(halo)
    )
    progress.reads = listing.requests + user_pages
    mapped = mapped_clients(snapshot)
    plans = plan_all(mapped, computers, listing.assets, users, snapshot.sites_by_client, config)
    progress.plans = plans
    await _keep_links(store, summary, link_sites(mapped, computers, listing.assets, config))
    totals = count_plan(plans)
    batch = settings.asset_write_batch
    minimum = -(-totals.creates // batch) + -(-(totals.updates + totals.links) // batch)
    summary = summary.model_copy(
        update={"totals": totals, "reads": progress.reads, "writes_minimum": minimum}
    )
    notes = _notes(len(listing.rejects), len(mapped) - len(plans), users_error)
    if notes:
        summary = summary.model_copy(update={"note": notes})
    if settings.asset_sync == "plan":
        over = totals.creates > settings.asset_max_creates
        note = f"apply would hold: {totals.creates} creates > ASSET_MAX_CREATES" if over else None
        return summary.model_copy(update={"outcome": "planned", "note": note or summary.note})
    hold = await asyncio.to_thread(
        guard_creates, store, run_id=summary.run_id, generation=summary.generation,
        creates=totals.creates, at=summary.computed_at, max_creates=settings.asset_max_creates,
    )  # fmt: skip
    if hold is not None and not hold.approved:
        return summary.model_copy(update={"outcome": "held", "held": hold})
    await _apply(halo, plans, config, batch, progress)
    if hold is not None:
        await asyncio.to_thread(set_hold, store, None)
    return summary.model_copy(update={"outcome": "applied"})


def _notes(unreadable: int, shared_tenants: int, users_error: str | None) -> str | None:
    """What the summary notes about the read: rows unread, clients left alone, users unread."""
    notes = []
    if unreadable:
        notes.append(f"{unreadable} asset rows could not be read")
    if shared_tenants > 0:
        notes.append(
            f"{shared_tenants} clients share an ImmyBot tenant with another client: "
            "left alone (map them one to one)"
        )
    if users_error:
        notes.append(f"users not read ({users_error}): new assets go to default sites")
    return "; ".join(notes) or None


async def _keep_links(store: Store, summary: AssetRunSummary, links: Sequence[SiteLink]) -> None:
    # A storage failure costs the links (site-scoped rules then tag nothing), not the asset run.
    try:
        await asyncio.to_thread(write_site_links, store, summary.generation, links,
                                run_id=summary.run_id, at=summary.computed_at)  # fmt: skip
    except Exception as error:
        log.warning(
            "could not store the computer sites of run %s: %s", summary.run_id, type(error).__name__
        )


async def _keep_plan(
    store: Store, summary: AssetRunSummary, plans: Sequence[ClientAssetPlan]
) -> None:
    try:
        await asyncio.to_thread(store_plan, store, summary.generation, summary, plans)
    except Exception as error:
        what = "summary" if summary.outcome == "skipped" else "plan"
        log.warning(
            "could not store the asset %s of run %s: %s", what, summary.run_id, type(error).__name__
        )


def _log_run(summary: AssetRunSummary, seconds: float) -> None:
    fields = {
        "event": "asset_run",
        "run_id": summary.run_id,
        "mode": summary.mode,
        "outcome": summary.outcome,
        "totals": summary.totals.model_dump(),
        "written": summary.written,
        "reads": summary.reads,
        "writes": summary.writes,
        "seconds": round(seconds, 3),
        "error": summary.error,
    }
    log.info(json.dumps(fields, sort_keys=True))


async def _users(halo: HaloClient) -> tuple[list[User], int, str | None]:
    """Every HaloPSA user; without the permission, none (sites then fall back to defaults)."""
    try:
        users, pages = await list_users(halo)
    except HaloAuthError as error:
        return [], 1, str(error)
    return users, pages, None


async def _apply(
    halo: HaloClient,
    plans: Iterable[ClientAssetPlan],
    config: AssetConfig,
    batch: int,
    progress: _Progress,
) -> None:
    """Write links and updates, then creates, `batch` assets per request; stop at the first error."""
    plans = list(plans)
    progress.attempted = True
    changes = [(u, "linked") for p in plans for u in p.links] + [
        (u, "updated") for p in plans for u in p.updates
    ]
    for start in range(0, len(changes), batch):
        chunk = changes[start : start + batch]
        await post_assets(halo, [update_body(u, config) for u, _ in chunk])
        progress.writes += 1
        for _, kind in chunk:
            progress.written[kind] += 1
    creates = [c for p in plans for c in p.creates]
    for start in range(0, len(creates), batch):
        chunk_creates = creates[start : start + batch]
        await post_assets(halo, [create_body(c, config) for c in chunk_creates])
        progress.writes += 1
        progress.written["created"] += len(chunk_creates)
