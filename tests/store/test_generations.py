"""How a generation is laid out in its table, and read back, against real Azurite."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

import pytest

from shared.core.generation import CLIENTS, MATCH_BUCKET, MATCHES, Manifest, rule_entry
from shared.core.mapping import TenantMatch
from shared.core.rules import Rule
from shared.core.targets import Quantities, SiteRef, Snapshot, Target
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site
from shared.records.immybot import ImmyTenant
from shared.store.base import MAX_ENTITY_CHARS
from shared.store.generations import (
    layout,
    read_client,
    read_manifest,
    read_rule_targets,
    read_snapshot,
)
from shared.store.repository import Store
from shared.store.writes import entity_sizes
from tests.conftest import azurite_service

_prefixes = itertools.count()
TODAY = date(2026, 11, 25)
MANIFEST = Manifest(generation="g", synced_at=datetime(2026, 11, 25, tzinfo=UTC), today=TODAY)


@pytest.fixture
def store(azurite) -> Store:
    service = azurite_service(azurite)
    return Store(service, prefix=f"l{next(_prefixes)}x")


def invoice(invoice_id: int, client_id: int, lines: int, text: str = "x") -> RecurringInvoice:
    return RecurringInvoice.model_validate(
        {
            "id": invoice_id,
            "client_id": client_id,
            "lines": [
                {
                    "id": invoice_id * 1000 + n,
                    "_itemid": 1,
                    "item_shortdescription": text,
                    "qty_order": 1,
                }
                for n in range(lines)
            ],
        }
    )


def test_a_large_client_spills_into_parts_and_reads_back_whole(store):
    # 60 invoices of ~12 KB each: more than one entity holds, so the client takes several parts.
    big = [
        invoice(i, 1, 40, "SentinelOne Complete per endpoint, billed monthly") for i in range(1, 61)
    ]
    snapshot = Snapshot.build(
        [Client(id=1, name="Contoso Ltd"), Client(id=2, name="Fabrikam")],
        [Site(id=5, name="HQ", client_id=1)],
        [Contract(id=9, client_id=2, contracttype_name="Managed Security")],
        big,
        [Item(id=1, name="SentinelOne Complete")],
    )
    planned = layout(snapshot, {}, MANIFEST)
    rows = [e["RowKey"] for e in planned.partitions[CLIENTS]]
    contoso = [r for r in rows if r.startswith("0000000001")]
    assert len(contoso) >= 2 and contoso[0] == "0000000001"  # the first part: the bare key
    assert rows.count("0000000002") == 1
    assert planned.too_large == []

    store.write_generation("g1", planned.partitions)
    record = read_client(store, "g1", 1)
    assert [i.model_dump() for i in record.invoices] == [i.model_dump() for i in big]
    assert [s.id for s in record.sites] == [5]
    assert read_client(store, "g1", 3) is None
    again = read_snapshot(store, "g1")
    assert again == snapshot


def test_a_record_too_large_for_any_entity_is_rejected_not_truncated():
    huge = invoice(1, 1, 1, "y" * MAX_ENTITY_CHARS)
    snapshot = Snapshot.build([Client(id=1, name="A")], [], [], [huge, invoice(2, 1, 1)], [])
    planned = layout(snapshot, {}, MANIFEST)
    assert [(r.kind, r.record_id) for r in planned.too_large] == [("invoices", "1")]
    assert '"id":2' in planned.partitions[CLIENTS][0]["d"]


def test_targets_are_packed_and_read_back_in_order(store):
    targets = [
        Target(
            client_id=n,
            client_name=f"Client {n:05d}",
            immy_tenant_id=None,
            immy_tenant_name=None,
            mapping="not_configured",
            sites=[SiteRef(id=n, name="HQ")],
            quantity=n,
            quantities=Quantities(fixed=n, calculated=0, calculated_unknown=0),
            reasons=[],
        )
        for n in range(1, 5001)
    ]
    rule = Rule(software="Huntress", contract_types=["Managed Security"])
    empty = Snapshot.build([], [], [], [], [])
    entry = rule_entry(rule, targets, TODAY, empty)
    manifest = MANIFEST.model_copy(update={"rules": {rule.key: entry}})
    planned = layout(empty, {rule.key: targets}, manifest)
    partition = manifest.rules[rule.key].partition
    assert partition.startswith("targets|huntress|")
    assert 1 < len(planned.partitions[partition]) < 20
    store.write_generation("g2", planned.partitions)
    assert read_rule_targets(store, "g2", rule.key) == targets
    assert read_manifest(store, "g2")[0] == manifest


def test_nothing_written_grows_with_clients_past_the_entity_limits():
    # 20,000 clients with ImmyBot on, half unmapped and covered by one rule: the mapping, the
    # unmapped list and the manifest must all stay within one entity's and one property's limits.
    count = 20_000
    clients = [Client(id=n, name=f"Client {n:05d} Holdings Limited") for n in range(1, count + 1)]
    tenants = [ImmyTenant(id=n, name=f"Client {n:05d} Holdings") for n in range(1, count, 2)]
    matches = {
        c.id: TenantMatch(client_id=c.id, kind="name", tenant_id=c.id, tenant_name=c.name)
        if c.id % 2
        else TenantMatch(client_id=c.id, kind="unmapped", detail="no tenant has this name")
        for c in clients
    }
    snapshot = Snapshot.build(clients, [], [], [], []).with_immybot(tenants, matches)
    targets = [
        Target(
            client_id=c.id,
            client_name=c.name,
            immy_tenant_id=matches[c.id].tenant_id,
            immy_tenant_name=matches[c.id].tenant_name,
            mapping=matches[c.id].kind,
            sites=[],
            quantity=1,
            quantities=Quantities(fixed=1, calculated=0, calculated_unknown=0),
            reasons=[],
        )
        for c in clients
    ]
    rule = Rule(software="Huntress", contract_types=["Managed Security"])
    entry = rule_entry(rule, targets, TODAY, snapshot)
    assert entry.unmapped_count == count // 2
    manifest = MANIFEST.model_copy(update={"rules": {rule.key: entry}})
    planned = layout(snapshot, {rule.key: targets}, manifest)
    assert planned.too_large == []
    sizes = [entity_sizes(e) for rows in planned.partitions.values() for e in rows]
    assert max(s[0] for s in sizes) < 1024 * 1024
    assert max(s[1] for s in sizes) < 64 * 1024
    assert len(planned.partitions[MATCHES]) >= count // MATCH_BUCKET
    assert len(planned.partitions[entry.unmapped_partition]) > 1
