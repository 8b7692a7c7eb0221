"""The tab's heading per software: billed, targeted and installed, the reconciliation's numbers.

"SentinelOne — billed 25 · targeted 5 · installed 2": what the client pays for, how many of its
tenant's computers the rule reaches (a site-scoped rule: at the client's in-scope sites), and on
how many of them ImmyBot's inventory shows the software, all as of the last sync and computed by
`shared.core.reconcile.client_row`, as `GET /api/reconciliation` computes them. A number that is
not known says so (and why), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shared.core.coverage import Wanted
from shared.core.installed import InventoryState, TenantComputers
from shared.core.reach import SiteScope
from shared.core.reconcile import ReconciliationRow, client_row
from shared.core.site_links import SiteLink


def heading_numbers(
    wanted: Sequence[Wanted],
    tenant_id: int | None,
    tenants: Mapping[int, TenantComputers] | None,
    inventory: InventoryState | None,
    links: Mapping[int, SiteLink] | None,
) -> dict[str, str]:
    """Software -> its numbers line, for the client whose tenant is `tenant_id` (None: none),
    from its tenant's computers as the sync stored them (`tenants`, None: ImmyBot is not
    configured) and, for a site-scoped rule, the generation's computer-to-site `links`."""
    return {
        w.software: numbers_text(
            client_row(
                w.target,
                tenant_id,
                tenants,
                w.patterns,
                inventory,
                SiteScope(links) if w.site_scoped else None,
            )
        )
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
    parts = [_billed(row), targeted, installed]
    if row.unplaced:
        parts.append(f"{row.unplaced} computer{'s' if row.unplaced != 1 else ''} at no known site")
    return " · ".join(parts)


def _billed(row: ReconciliationRow) -> str:
    if row.quantity is not None:
        return f"billed {row.quantity:g}"
    if row.quantity_status == "calculated_unknown":
        return "billed: calculated, not known yet"
    return "billed by contract (no quantity)"
