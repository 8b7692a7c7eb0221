"""The tab's heading per software: billed, targeted and installed, the reconciliation's numbers.

"SentinelOne — billed 25 · targeted 5 · installed 2": what the client pays for, how many of its
tenant's computers the rule reaches, and on how many ImmyBot's inventory shows the software, all as
of the last sync and computed by `shared.core.reconcile.client_row`, as `GET /api/reconciliation`
computes them. A number that is not known says so (and why), never 0.
"""

from __future__ import annotations

from collections.abc import Sequence

from shared.core.coverage import Wanted
from shared.core.generation import Manifest
from shared.core.installed import StoredComputer, by_tenant
from shared.core.reconcile import ReconciliationRow, client_row


def heading_numbers(
    wanted: Sequence[Wanted],
    tenant_id: int | None,
    stored: Sequence[StoredComputer] | None,
    manifest: Manifest,
    stale_days: int,
) -> dict[str, str]:
    """Software -> its numbers line, for the client whose tenant is `tenant_id` (None: none) and
    whose tenant's computers the sync stored as `stored` (None: ImmyBot is not configured)."""
    tenants = None if stored is None else by_tenant(stored, manifest.synced_at, stale_days)
    inventory = manifest.immybot.inventory
    return {
        w.software: numbers_text(client_row(w.target, tenant_id, tenants, w.patterns, inventory))
        for w in wanted
    }


def numbers_text(row: ReconciliationRow) -> str:
    """ "billed 25 · targeted 5 · installed 2", each unknown one said so."""
    installed = (
        f"installed {row.installed}"
        if row.installed is not None
        else f"installed unknown ({row.installed_unknown})"
    )
    targeted = f"targeted {row.targeted}" if row.targeted is not None else "targeted unknown"
    return " · ".join((_billed(row), targeted, installed))


def _billed(row: ReconciliationRow) -> str:
    if row.quantity is not None:
        return f"billed {row.quantity:g}"
    if row.quantity_status == "calculated_unknown":
        return "billed: calculated, not known yet"
    return "billed by contract (no quantity)"
