"""The pure parts of a generation: partition names, the resolution version, packing by size."""

from __future__ import annotations

from datetime import date

from shared.core.generation import (
    client_record,
    pack_client,
    pack_texts,
    resolution_version,
    target_partition,
    unmapped_partition,
)
from shared.core.rules import Rule
from shared.core.targets import Snapshot
from shared.records.halo import Client, Site
from shared.records.parsing import Cause, Reject

EMPTY = Snapshot.build([], [], [], [], [])


def test_a_rule_resolved_on_another_day_gets_another_partition():
    rule = Rule(software="Office", contract_types=["Managed"])
    monday = resolution_version(rule, EMPTY, date(2026, 1, 5))
    assert monday == resolution_version(rule, EMPTY, date(2026, 1, 5))
    assert monday != resolution_version(rule, EMPTY, date(2026, 1, 6))
    edited = Rule(software="Office", contract_types=["Managed", "Gold"])
    assert monday != resolution_version(edited, EMPTY, date(2026, 1, 5))


def test_the_unmapped_partition_sits_beside_its_targets_partition():
    rule = Rule(software="Office", contract_types=["Managed"])
    targets = target_partition(rule, "abc")
    assert targets == f"targets|{rule.key}|abc"
    assert unmapped_partition(targets) == f"unmapped|{rule.key}|abc"


def test_texts_are_packed_in_order_within_the_limit():
    too_large: list[Reject] = []
    chunks = pack_texts(["aaaa", "bbbb", "cccc", "x" * 20, "dd"], 11, too_large, "items")
    assert chunks == [["aaaa", "bbbb"], ["cccc", "dd"]]
    assert [(r.kind, r.cause) for r in too_large] == [("items", Cause.TOO_LARGE)]


def test_no_texts_pack_to_no_chunks():
    assert pack_texts([], 100, [], "items") == []


def test_a_client_always_has_a_first_part_and_spills_into_more():
    too_large: list[Reject] = []
    assert list(pack_client([], 10, 100, too_large)) == [{}]
    sites = [Site(id=i, name="s" * 20, client_id=1) for i in range(1, 4)]
    text = sites[0].model_dump_json()
    limit = 10 + 2 * (len(text) + 1)
    parts = list(pack_client((("sites", s) for s in sites), 10, limit, too_large))
    assert [len(p["sites"]) for p in parts] == [2, 1]
    assert too_large == []


def test_a_record_too_large_for_any_part_is_rejected_by_id():
    too_large: list[Reject] = []
    site = Site(id=7, name="s" * 50, client_id=1)
    parts = list(pack_client([("sites", site)], 10, 40, too_large))
    assert parts == [{}]
    assert [(r.kind, r.record_id) for r in too_large] == [("sites", "7")]


def test_a_client_record_joins_its_parts():
    client = Client(id=1, name="Contoso")
    site_a, site_b = Site(id=1, name="A", client_id=1), Site(id=2, name="B", client_id=1)
    documents = [
        {"client": client.model_dump(), "sites": [site_a.model_dump()]},
        {"sites": [site_b.model_dump()]},
    ]
    record = client_record(documents)
    assert record.client.name == "Contoso"
    assert [s.id for s in record.sites] == [1, 2]
    assert record.contracts == [] and record.invoices == []
