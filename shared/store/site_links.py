"""The computer-to-site links an asset run found, stored with the generation it ran against.

Partition `computer_sites` of the generation's table: the links packed many to an entity (RowKey
`links-<n, 6 digits>`) and a `summary` row written after them, which names the run and how many
rows it wrote. They live and die with their generation. A generation whose asset run did not list
HaloPSA's assets (ASSET_SYNC off, HaloPSA failing, ImmyBot not read) has none, and one whose links
are being rewritten has no summary until they are complete: readers then get None, never half a
set (a missing link would read as "not at the rule's sites" and untag the computer).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, TypeAdapter

from shared.core.generation import pack_texts
from shared.core.site_links import SiteLink
from shared.store.base import MAX_ENTITY_CHARS, StoreError, decode_data, encode_data
from shared.store.repository import Store, document_entities

PARTITION = "computer_sites"
SUMMARY_ROW = "summary"
_LINK_ROWS = "links-"
# Room for the row's other properties beside the packed links.
_DOC_LIMIT = MAX_ENTITY_CHARS - 2_000
_LINKS = TypeAdapter(list[SiteLink])


class SiteLinksSummary(BaseModel):
    """Which asset run found a generation's links, and how many."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    computed_at: datetime
    computers: int
    placed: int
    rows: int = 0


def write_site_links(
    store: Store, generation: str, links: Sequence[SiteLink], *, run_id: str, at: datetime
) -> SiteLinksSummary:
    """Replace a generation's links; the summary is written last, once every link row is."""
    chunks = pack_texts((link.model_dump_json() for link in links), _DOC_LIMIT, [], PARTITION)
    rows = [
        {
            "RowKey": f"{_LINK_ROWS}{n:06d}",
            "count": len(chunk),
            **encode_data(f"[{','.join(chunk)}]"),
        }
        for n, chunk in enumerate(chunks)
    ]
    summary = SiteLinksSummary(
        run_id=run_id,
        computed_at=at,
        computers=len(links),
        placed=sum(link.site_id is not None for link in links),
        rows=len(rows),
    )
    # Deleting goes in RowKey order, links before the summary: a reader in between finds fewer
    # rows than the summary names, or no summary, and takes it as no links.
    store.delete_partition(generation, PARTITION)
    if rows:
        store.write_generation(generation, {PARTITION: rows})
    store.write_generation(
        generation, {PARTITION: document_entities(SUMMARY_ROW, summary.model_dump_json())}
    )
    return summary


def read_site_links(
    store: Store, generation: str
) -> tuple[SiteLinksSummary, dict[int, SiteLink]] | None:
    """A generation's links by computer id with their summary; None when it has no complete set."""
    entities = store.read_partition(generation, PARTITION)
    head = next((e for e in entities if e["RowKey"] == SUMMARY_ROW), None)
    if head is None:
        return None
    summary = SiteLinksSummary.model_validate_json(decode_data(head))
    rows = [e for e in entities if str(e["RowKey"]).startswith(_LINK_ROWS)]
    if len(rows) != summary.rows:
        return None  # being rewritten: the next read sees the whole set
    links = [link for row in rows for link in _LINKS.validate_json(decode_data(row))]
    return summary, {link.computer_id: link for link in links}


def site_links_summary(store: Store, generation: str) -> SiteLinksSummary | None:
    """Only the summary (one small read): which asset run's links a generation holds, if any."""
    try:
        document, _ = store.read_document(generation, PARTITION, SUMMARY_ROW)
    except StoreError:
        return None
    return SiteLinksSummary.model_validate(document)
