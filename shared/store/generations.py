"""What a snapshot generation holds and how it is laid out in its table.

Partitions of a generation's table:
- `clients`: one document per client holding the client and its sites, contracts and recurring
  invoices (with lines). RowKey `<client id, 10 digits>`, then `-<part, 3 digits>`: a client whose
  records outgrow one entity spills into further parts, so nothing is ever truncated. Written in
  chunks of at most 100 rows, partitions `clients|<first client id>` (`shared.store.sharing`).
- `items`: the item catalogue, packed many to a document.
- `targets|<rule key>|<rule hash>`: one rule's resolved targets, packed many to a document, in
  order. The manifest names the partition of each rule, so a rule edited between syncs is
  re-resolved into a fresh partition and switched to with one manifest write: readers never see a
  half-written answer.
- `unmapped|<rule key>|<rule hash>`: beside each targets partition, the rule's covered clients
  that have no ImmyBot tenant (this list grows with clients, so it is not in the manifest).
- `immy_matches`, `immy_names`: every client's ImmyBot mapping outcome, in buckets of client ids,
  and the clients named like several tenants (shared.store.matches).
- `immy_tenants`, `immy_computers`: ImmyBot's tenants, and its computers per tenant, each with the
  inventory rows a rule's detect pattern matches (`shared.core.installed.StoredComputer`).
- `meta`: the manifest (when, what was read, which rules, where their targets are) and the catalog;
  each may span several rows (`manifest`, `manifest|001`, ...) replaced in one transaction.

Nothing that grows with the number of clients is a single entity: per-client data is per client or
packed into as many entities as it needs.

Table Storage costs per entity (Azurite about 1.3 ms each whatever its size), so records are grouped
into as few entities as the size limits allow: a 5,000-client snapshot is about 5,000 entities
instead of 45,000, and a client's whole record is one point read. The `clients` and
`immy_computers` rows of an owner whose content did not change are not written again: the
generation's index names the generation (and chunk) holding them (`shared.store.sharing`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from pydantic import BaseModel

from shared.core.catalog import Catalog
from shared.core.generation import (
    CATALOG,
    CLIENTS,
    IMMY_COMPUTERS,
    IMMY_NAMES,
    IMMY_TENANTS,
    ITEMS,
    MANIFEST,
    MATCHES,
    META,
    ClientRecord,
    Manifest,
    RuleEntry,
    client_record,
    pack_client,
    rule_entry,
)
from shared.core.installed import StoredComputer
from shared.core.rules import Rule
from shared.core.targets import (
    Snapshot,
    Target,
    UnmappedClient,
    resolve,
    unmapped_of,
)
from shared.records.halo import Item
from shared.records.immybot import ImmyComputer, ImmyTenant
from shared.records.parsing import Reject
from shared.store.base import (
    MAX_ENTITY_CHARS,
    StoreConflict,
    StoreError,
    client_key,
    decode_data,
    encode_data,
)
from shared.store.matches import match_entities, name_entities, packed_lists, read_matches
from shared.store.repository import Store, document_entities
from shared.store.sharing import all_rows, owner_rows

# Room left in a document for its envelope (keys, brackets) on top of the records' own JSON.
_DOC_LIMIT = MAX_ENTITY_CHARS - 2_000


def _dump(model: BaseModel) -> str:
    return model.model_dump_json()


@dataclass(frozen=True, slots=True)
class Layout:
    """A generation ready to write: entities per partition, and records too large to store."""

    partitions: dict[str, list[dict[str, Any]]]
    too_large: list[Reject]

    @property
    def entities(self) -> int:
        """How many entities the generation has."""
        return sum(len(v) for v in self.partitions.values())


def layout(
    snapshot: Snapshot,
    targets: Mapping[str, Sequence[Target]],
    manifest: Manifest,
    catalog: Catalog | None = None,
    computers: Sequence[ImmyComputer] = (),
) -> Layout:
    """Lay a snapshot, its targets (by rule key), manifest, catalog and ImmyBot data out as entities."""
    too_large: list[Reject] = []
    clients = client_entities(snapshot, too_large)
    partitions = {
        CLIENTS: clients,
        ITEMS: packed_lists((_dump(i) for i in snapshot.items.values()), too_large, "items"),
        META: document_entities(MANIFEST, manifest.model_dump_json()),
    }
    if catalog is not None:
        partitions[META] += document_entities(CATALOG, catalog.model_dump_json())
    if snapshot.immybot:
        partitions[MATCHES] = match_entities(snapshot.matches.values(), too_large)
        partitions[IMMY_NAMES] = name_entities(snapshot.tenants.values(), snapshot.clients.values())
        partitions[IMMY_TENANTS] = packed_lists(
            (_dump(t) for t in snapshot.tenants.values()), too_large, "immy_tenants"
        )
        by_tenant: dict[int, list[str]] = defaultdict(list)
        for computer in computers:
            by_tenant[computer.tenant_id].append(_dump(computer))
        partitions[IMMY_COMPUTERS] = [
            {**entity, "RowKey": part_key(f"{tenant_id:010d}", int(entity["RowKey"]))}
            for tenant_id, texts in sorted(by_tenant.items())
            for entity in packed_lists(texts, too_large, "immy_computers")
        ]
    for key, found in targets.items():
        entry = manifest.rules[key]
        partitions[entry.partition] = target_entities(found, too_large)
        partitions[entry.unmapped_partition] = unmapped_entities(found, snapshot, too_large)
    return Layout(partitions, too_large)


def client_entities(snapshot: Snapshot, too_large: list[Reject]) -> list[dict[str, Any]]:
    """Each client's document (its sites, contracts and invoices), in as many parts as it needs."""
    by_client: dict[int, list[tuple[str, BaseModel]]] = defaultdict(list)
    for site in snapshot.sites.values():
        by_client[site.client_id].append(("sites", site))
    for contract in snapshot.contracts:
        by_client[contract.client_id].append(("contracts", contract))
    for invoice in snapshot.invoices:
        by_client[invoice.client_id].append(("invoices", invoice))
    clients: list[dict[str, Any]] = []
    for client in snapshot.clients.values():
        head = _dump(client)
        records = by_client.get(client.id, [])
        for part, groups in enumerate(pack_client(records, len(head), _DOC_LIMIT, too_large)):
            body = ",".join(f'"{kind}":[{",".join(items)}]' for kind, items in groups.items())
            document = f'{{"client":{head}' + (f",{body}" if body else "") + "}"
            clients.append(
                {"RowKey": part_key(client_key(client.id), part), **encode_data(document)}
            )
    return clients


def part_key(owner: str, part: int) -> str:
    """The RowKey of one part of an owner's rows (a client's, a tenant's computers): the first
    is the owner's bare 10-character key, the rest `<owner>-<part>`. Readers take every row
    starting with the owner's key, so rows written as `<owner>-000` read the same.

    Why the bare key: Azurite (tests, the devhost, the benchmarks) spends about twice the CPU on
    an entity whose RowKey has 13 characters or more (3,000 entities: 0.9-1.0 s of its CPU with
    10 to 12, 1.8-2.2 s with 13 or 14), and nearly every client has one part."""
    return owner if part == 0 else f"{owner}-{part:03d}"


def unmapped_entities(
    found: Iterable[Target], snapshot: Snapshot, too_large: list[Reject]
) -> list[dict[str, Any]]:
    """One rule's covered clients without a tenant, packed into entities."""
    return packed_lists((_dump(u) for u in unmapped_of(found, snapshot)), too_large, "unmapped")


def target_entities(found: Iterable[Target], too_large: list[Reject]) -> list[dict[str, Any]]:
    """One rule's targets packed into entities."""
    return packed_lists((_dump(t) for t in found), too_large, "targets")


# -- reads ---------------------------------------------------------------------------------------


def read_client(store: Store, generation: str, client_id: int) -> ClientRecord | None:
    """One client's records (a single range read, in whichever generation's table holds them:
    shared.store.sharing), or None if the generation lacks it."""
    documents = [_decode(e) for e in owner_rows(store, generation, CLIENTS, client_id)]
    return client_record(documents) if documents else None


def read_clients(store: Store, generation: str) -> list[ClientRecord]:
    """Every client's records, in client id order."""
    parts: dict[str, list[Any]] = defaultdict(list)
    for entity in all_rows(store, generation, CLIENTS):
        parts[str(entity["RowKey"])[:10]].append(_decode(entity))
    return [client_record(parts[key]) for key in sorted(parts)]


def read_items(store: Store, generation: str) -> list[Item]:
    """The item catalogue of a generation."""
    return [Item.model_validate(x) for x in _read_lists(store, generation, ITEMS)]


def read_snapshot(store: Store, generation: str) -> Snapshot:
    """A whole generation back as a Snapshot, for re-resolving rules without HaloPSA."""
    records = read_clients(store, generation)
    snapshot = Snapshot.build(
        (r.client for r in records),
        (s for r in records for s in r.sites),
        (c for r in records for c in r.contracts),
        (i for r in records for i in r.invoices),
        read_items(store, generation),
    )
    manifest, _ = read_manifest(store, generation)
    if not manifest.immybot.configured:
        return snapshot
    return snapshot.with_immybot(read_tenants(store, generation), read_matches(store, generation))


def read_tenants(store: Store, generation: str) -> list[ImmyTenant]:
    """ImmyBot's tenants as of a generation."""
    return [ImmyTenant.model_validate(x) for x in _read_lists(store, generation, IMMY_TENANTS)]


def read_unmapped(store: Store, generation: str, entry: RuleEntry) -> list[UnmappedClient]:
    """A rule's covered clients that have no ImmyBot tenant, as of a generation."""
    texts = _read_lists(store, generation, entry.unmapped_partition)
    return [UnmappedClient.model_validate(x) for x in texts]


def read_computers(
    store: Store, generation: str, tenant_id: int | None = None
) -> list[StoredComputer]:
    """ImmyBot's computers as of a generation, each with the software the sync's inventory
    search found on it: one tenant's (one range read) or all."""
    rows = (
        all_rows(store, generation, IMMY_COMPUTERS)
        if tenant_id is None
        else owner_rows(store, generation, IMMY_COMPUTERS, tenant_id)
    )
    return [StoredComputer.model_validate(x) for row in rows for x in _decode(row)]


def read_targets(store: Store, generation: str, partition: str) -> list[Target]:
    """One rule's resolved targets from the partition its manifest entry names, in order."""
    return [Target.model_validate(x) for x in _read_lists(store, generation, partition)]


def read_rule_targets(store: Store, generation: str, rule_key: str) -> list[Target] | None:
    """A rule's targets through the generation's manifest; None if the rule is not in it."""
    manifest, _ = read_manifest(store, generation)
    entry = manifest.rules.get(rule_key)
    return None if entry is None else read_targets(store, generation, entry.partition)


def read_target_ids(store: Store, generation: str, partition: str) -> set[int]:
    """The client ids in one rule's targets partition."""
    return {int(x["client_id"]) for x in _read_lists(store, generation, partition)}


def read_target_sets(store: Store, generation: str, partition: str) -> tuple[set[int], set[int]]:
    """The client ids in one rule's targets partition, and those of them with an ImmyBot tenant."""
    found = _read_lists(store, generation, partition)
    return (
        {int(x["client_id"]) for x in found},
        {int(x["client_id"]) for x in found if x.get("immy_tenant_id") is not None},
    )


def read_manifest(store: Store, generation: str) -> tuple[Manifest, str]:
    """A generation's manifest and its ETag (for optimistic updates)."""
    document, etag = store.read_document(generation, META, MANIFEST)
    return Manifest.model_validate(document), etag


def read_catalog(store: Store, generation: str) -> Catalog:
    """The catalogue of contract types and items stored with a generation."""
    document, _ = store.read_document(generation, META, CATALOG)
    return Catalog.model_validate(document)


@dataclass(frozen=True, slots=True)
class AppliedRules:
    """What `apply_rules` made: the manifest it wrote with its token and the token it replaced,
    and each re-resolved rule's targets as written (by rule key), so a caller needs no read to
    see them."""

    manifest: Manifest
    etag: str
    replaced_etag: str
    targets: dict[str, list[Target]]


def apply_rules(
    store: Store,
    generation: str,
    snapshot: Snapshot,
    rules: Sequence[Rule],
    today: date,
    *,
    removed: Sequence[str] = (),
    read: tuple[Manifest, str] | None = None,
    attempts: int = 5,
) -> AppliedRules:
    """Re-resolve `rules` (and drop `removed` keys) in an existing generation; `read`: the
    manifest and its token if the caller has just read them.

    New targets go to fresh partitions first (all rules' in one write, its transactions side by
    side); one ETag-checked manifest write then switches readers over, and the partitions nothing
    names any more are deleted.
    """
    fresh: dict[str, RuleEntry] = {}
    resolved: dict[str, list[Target]] = {}
    partitions: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        found = resolve(snapshot, rule, today)
        entry = rule_entry(rule, found, today, snapshot)
        partitions[entry.partition] = target_entities(found, [])
        partitions[entry.unmapped_partition] = unmapped_entities(found, snapshot, [])
        fresh[rule.key], resolved[rule.key] = entry, list(found)
    if partitions:
        store.write_generation(generation, partitions)
    for _ in range(attempts):
        manifest, etag = read or read_manifest(store, generation)
        read = None  # a conflict means it changed: read it again
        previous = {p for e in manifest.rules.values() for p in (e.partition, e.unmapped_partition)}
        rules_now = {k: v for k, v in manifest.rules.items() if k not in removed}
        rules_now.update(fresh)
        updated = manifest.model_copy(update={"rules": rules_now})
        try:
            written = store.replace_document(
                generation, META, MANIFEST, updated.model_dump_json(), etag
            )
        except StoreConflict:
            continue  # someone else changed another rule meanwhile: merge onto theirs
        named = {p for e in rules_now.values() for p in (e.partition, e.unmapped_partition)}
        store.delete_partitions(generation, previous - named)
        return AppliedRules(updated, written, etag, resolved)
    raise StoreError(f"the manifest of generation {generation} kept changing; rule not applied")


def read_target_texts(store: Store, generation: str, partition: str) -> list[str]:
    """The stored JSON arrays of one targets partition, undecoded, in order."""
    return [decode_data(e) for e in store.read_partition(generation, partition)]


def _read_lists(store: Store, generation: str, partition: str) -> list[Any]:
    return [x for document in store.read_documents(generation, partition) for x in document]


def _decode(entity: Mapping[str, Any]) -> Any:
    return json.loads(decode_data(entity))
