"""`GET /api/targets?software=NAME&expand=computers` for a site-scoped rule: the computers at its
targets' sites, which HaloPSA site each is at, and the computers whose site is unknown.

Where a computer is comes from the links asset population stores with the generation after it
became current (`shared.store.site_links`), so this answer is not kept in the answer cache; its
ETag names the asset run whose links it used.
"""

from __future__ import annotations

from collections.abc import Callable

from shared.api.current import StalePartition
from shared.api.models import TargetsResponse
from shared.api.targets_query import etag_matches
from shared.core.generation import RuleEntry
from shared.core.site_links import place
from shared.records.immybot import ImmyComputer
from shared.store.generations import read_computers, read_targets
from shared.store.read_cache import Current
from shared.store.repository import Store
from shared.store.site_links import read_site_links, site_links_summary

Etag = Callable[[str], str]
NO_LINKS_STAMP = "nolinks"


def site_scoped_answer(
    store: Store,
    current: Current,
    entry: RuleEntry,
    envelope: Callable[[], TargetsResponse],
    etag_for: Etag,
    if_none_match: str | None,
) -> tuple[str, bytes | None]:
    """The ETag, and the answer unless the caller's copy is current (`etag_for` makes the ETag
    from the stamp of the links used; `envelope` the answer around the targets)."""
    generation = current.pointer.generation
    summary = site_links_summary(store, generation)
    etag = etag_for(summary.run_id if summary else NO_LINKS_STAMP)
    if etag_matches(if_none_match, etag):
        return etag, None
    found = read_targets(store, generation, entry.partition)
    if entry.targets and not found:
        raise StalePartition
    links = read_site_links(store, generation)
    # Links rewritten since the summary was read: the ETag follows what the answer holds.
    etag = etag_for(links[0].run_id if links else NO_LINKS_STAMP)
    tenants = sorted({t.immy_tenant_id for t in found if t.immy_tenant_id is not None})
    # One read of the partition, as for any expand=computers: a rule may target many tenants.
    wanted = set(tenants)
    every = read_computers(store, generation) if wanted else []
    computers = [c for c in every if c.tenant_id in wanted]
    placement = place(found, computers, links[1] if links else None)
    by_id = {c.id: c for c in computers}
    at_sites: dict[str, list[ImmyComputer]] = {str(t): [] for t in tenants}
    for computer_id, link in sorted(placement.placed.items()):
        at_sites[str(link.tenant_id)].append(by_id[computer_id])
    answer = envelope().model_copy(
        update={
            "computers": at_sites,
            "computer_sites": {
                str(c): site for c, link in placement.placed.items() if (site := link.site_id)
            },
            "unplaced": placement.unplaced,
            "targets": found,
        }
    )
    return etag, answer.model_dump_json().encode()
