"""How a generation stores its client -> ImmyBot tenant mapping, and who shares a tenant's name.

- `immy_matches`: every client's mapping outcome, in buckets of client ids (RowKey `<client id //
  1000, 7 digits>-<part, 3 digits>`), so one client's is a small range read.
- `immy_names`: for each name two or more customer tenants share (normalised), the clients named
  so. Mapping a client by such a name pairs every client of the name with its tenant
  (shared.core.mapping), so an event that changes one of them maps them all again: this says who
  they are without reading every client. A `head` row is always written, so a generation with
  no shared name is told from one written before this partition.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from shared.core.generation import IMMY_NAMES, MATCH_BUCKET, MATCHES, META, pack_texts
from shared.core.mapping import TenantMatch, clients_named, shared_names
from shared.records.halo import Client
from shared.records.immybot import ImmyTenant
from shared.records.parsing import Reject
from shared.store.base import MAX_ENTITY_CHARS, StoreError, decode_data, encode_data
from shared.store.repository import Store

# Room left in a document for its envelope (keys, brackets) on top of the records' own JSON.
DOC_LIMIT = MAX_ENTITY_CHARS - 2_000
_HEAD = "head"

# normalised name -> the clients named so: (client id, name)
Names = dict[str, list[tuple[int, str]]]


def _dump(model: BaseModel) -> str:
    return model.model_dump_json()


def packed_lists(texts: Iterable[str], too_large: list[Reject], kind: str) -> list[dict[str, Any]]:
    """JSON texts packed into as few entities as fit, RowKey `<n, 6 digits>`."""
    return [
        {"RowKey": f"{n:06d}", "count": len(chunk), **encode_data(f"[{','.join(chunk)}]")}
        for n, chunk in enumerate(pack_texts(texts, DOC_LIMIT, too_large, kind))
    ]


def match_entities(matches: Iterable[TenantMatch], too_large: list[Reject]) -> list[dict[str, Any]]:
    """The client -> tenant outcomes in client-id buckets, each packed into as few entities as fit."""
    buckets: dict[int, list[str]] = defaultdict(list)
    for match in sorted(matches, key=lambda m: m.client_id):
        buckets[match.client_id // MATCH_BUCKET].append(_dump(match))
    return [
        {**entity, "RowKey": f"{bucket:07d}-{entity['RowKey'][-3:]}"}
        for bucket, texts in sorted(buckets.items())
        for entity in packed_lists(texts, too_large, "immy_matches")
    ]


def write_matches(store: Store, generation: str, matches: Iterable[TenantMatch]) -> None:
    """Replace a generation's client -> tenant outcomes (an admin changed an explicit mapping)."""
    entities = match_entities(matches, [])
    before = {str(e["RowKey"]) for e in store.read_partition(generation, MATCHES)}
    store.write_generation(generation, {MATCHES: entities})
    stale = before - {str(e["RowKey"]) for e in entities}
    if stale:
        store.delete_rows(generation, MATCHES, sorted(stale))


def read_matches(store: Store, generation: str) -> dict[int, TenantMatch]:
    """The client -> tenant mapping of a generation."""
    found = [x for d in store.read_documents(generation, MATCHES) for x in d]
    if not found:
        found = _legacy_matches(store, generation)
    return {m.client_id: m for m in (TenantMatch.model_validate(x) for x in found)}


def _legacy_matches(store: Store, generation: str) -> list[Any]:
    # Generations written before the matches were bucketed hold them as one `meta/mapping`
    # document; read it so a deployment serves its current generation until the next sync.
    try:
        document, _ = store.read_document(generation, META, "mapping")
    except StoreError:
        return []
    return list(document)


def read_match(store: Store, generation: str, client_id: int) -> TenantMatch | None:
    """One client's tenant mapping outcome (one small range read), or None if it has none."""
    prefix = f"{client_id // MATCH_BUCKET:07d}-"
    documents = store.read_documents(generation, MATCHES, row_prefix=prefix)
    for x in (x for document in documents for x in document):
        if int(x["client_id"]) == client_id:
            return TenantMatch.model_validate(x)
    return None


def name_entities(tenants: Iterable[ImmyTenant], clients: Iterable[Client]) -> list[dict[str, Any]]:
    """The `immy_names` rows of a snapshot's tenants and clients."""
    return names_entities(clients_named(shared_names(tenants), clients))


def names_entities(names: Names) -> list[dict[str, Any]]:
    """`names` as `immy_names` rows: the head, then the names packed."""
    texts = (
        json.dumps([key, named], separators=(",", ":")) for key, named in sorted(names.items())
    )
    rows = [{**row, "RowKey": f"n{row['RowKey']}"} for row in packed_lists(texts, [], IMMY_NAMES)]
    return [{"RowKey": _HEAD, **encode_data("[]")}, *rows]


def read_names(store: Store, generation: str) -> Names | None:
    """A generation's shared names and the clients named so; None when it was written without
    them (a whole read must do then)."""
    rows = store.read_partition(generation, IMMY_NAMES)
    if not any(r["RowKey"] == _HEAD for r in rows):
        return None
    entries = [e for r in rows if r["RowKey"] != _HEAD for e in json.loads(decode_data(r))]
    return {str(key): [(int(i), str(n)) for i, n in named] for key, named in entries}
