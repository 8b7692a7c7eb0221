"""The coverage semantics of DESIGN.md section 4, one row per case."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from shared.halo_models import Client, Contract, Item, RecurringInvoice, Site
from shared.rules import ItemMatch, Rule, RuleSet, closest, normalise
from shared.targets import (
    ContractReason,
    InvoiceLineReason,
    Snapshot,
    resolve,
)

TODAY = date(2026, 11, 25)


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat() + "T00:00:00"


CLIENTS = [
    Client(id=1, name="Contoso Ltd"),
    Client(id=2, name="Litware Inc", inactive=True),
    Client(id=3, name="Fabrikam, Inc."),
]
SITES = [
    Site(id=11, name="Contoso HQ", client_id=1),
    Site(id=12, name="Contoso Lab", client_id=1),
    Site(id=13, name="Closed office", client_id=1, inactive=True),
    Site(id=31, name="Fabrikam Main", client_id=3),
]
ITEMS = [
    Item(id=102, name="SentinelOne Complete", internalreference="S1-COMPLETE"),
    Item(id=103, name="Microsoft 365 Business Premium"),
]


def contract(**fields) -> Contract:
    base = {"id": 500, "client_id": 1, "contracttype_name": "Managed Security", "ref": "MS-1"}
    return Contract.model_validate({**base, **fields})


def invoice(lines: list[dict], **fields) -> RecurringInvoice:
    base = {"id": 700, "client_id": 1, "lines": lines}
    return RecurringInvoice.model_validate({**base, **fields})


def line(**fields) -> dict:
    base = {
        "id": 800,
        "_itemid": 102,
        "item_shortdescription": "SentinelOne Complete",
        "qty_order": 25,
    }
    return {**base, **fields}


BY_TYPE = Rule(software="Huntress", contract_types=["Managed Security"], grace_days=14)
BY_ITEM_ID = Rule(software="SentinelOne", items=[ItemMatch(id=102)])
BY_ITEM_CODE = Rule(software="SentinelOne", items=[ItemMatch(code="s1-complete")])
BY_ITEM_NAME = Rule(software="SentinelOne", items=[ItemMatch(name="  sentinelone   COMPLETE ")])


def targets_of(rule: Rule, contracts=(), invoices=()):
    snapshot = Snapshot.build(CLIENTS, SITES, contracts, invoices, ITEMS)
    return resolve(snapshot, rule, TODAY)


CASES = [
    # (case, rule, contracts, invoices, expected client ids)
    ("active contract", BY_TYPE, [contract(start_date=day(-30), end_date=day(30))], [], [1]),
    ("open-ended contract", BY_TYPE, [contract(start_date=day(-30))], [], [1]),
    ("contract ends today", BY_TYPE, [contract(end_date=day(0))], [], [1]),
    ("expired, past grace", BY_TYPE, [contract(end_date=day(-15), expired=True)], [], []),
    ("expired, in grace", BY_TYPE, [contract(end_date=day(-14), expired=True)], [], [1]),
    ("expired flag, no end date", BY_TYPE, [contract(expired=True)], [], []),
    ("future start", BY_TYPE, [contract(start_date=day(1))], [], []),
    ("inactive contract", BY_TYPE, [contract(active=False)], [], []),
    ("other contract type", BY_TYPE, [contract(contracttype_name="Backup")], [], []),
    ("type case and spaces", BY_TYPE, [contract(contracttype_name=" managed  SECURITY ")], [], [1]),
    ("inactive client", BY_TYPE, [contract(client_id=2)], [], []),
    ("active invoice line", BY_ITEM_ID, [], [invoice([line()])], [1]),
    ("disabled invoice", BY_ITEM_ID, [], [invoice([line()], disabled=True)], []),
    ("invoice ended", BY_ITEM_ID, [], [invoice([line()], enddate=day(-1))], []),
    ("invoice not started", BY_ITEM_ID, [], [invoice([line()], startdate=day(3))], []),
    ("quantity 0", BY_ITEM_ID, [], [invoice([line(qty_order=0)])], []),
    ("line ended", BY_ITEM_ID, [], [invoice([line(enddate=day(-1))])], []),
    ("line starts later", BY_ITEM_ID, [], [invoice([line(startdate=day(5))])], []),
    ("line inactive", BY_ITEM_ID, [], [invoice([line(isinactive=True)])], []),
    ("line null dates", BY_ITEM_ID, [], [invoice([line(startdate="0001-01-01T00:00:00")])], [1]),
    ("inactive client line", BY_ITEM_ID, [], [invoice([line()], client_id=2)], []),
    (
        "other item",
        BY_ITEM_ID,
        [],
        [invoice([line(_itemid=103, item_shortdescription="M365")])],
        [],
    ),
    ("matched by item code", BY_ITEM_CODE, [], [invoice([line(_itemid=102, item_code="")])], [1]),
    (
        "matched by line code",
        BY_ITEM_CODE,
        [],
        [invoice([line(_itemid=None, item_code="S1-Complete")])],
        [1],
    ),
    ("matched by name", BY_ITEM_NAME, [], [invoice([line(_itemid=None)])], [1]),
    ("name via item record", BY_ITEM_NAME, [], [invoice([line(item_shortdescription="S1")])], [1]),
    (
        "id does not match name rule",
        BY_ITEM_NAME,
        [],
        [invoice([line(_itemid=103, item_shortdescription="x")])],
        [],
    ),
]


@pytest.mark.parametrize(
    ("case", "rule", "contracts", "invoices", "expected"), CASES, ids=[c[0] for c in CASES]
)
def test_coverage_semantics(case, rule, contracts, invoices, expected):
    assert [t.client_id for t in targets_of(rule, contracts, invoices)] == expected


def test_excluded_client_is_never_a_target():
    rule = BY_TYPE.model_copy(update={"exclude_clients": [1]})
    assert targets_of(rule, [contract(), contract(id=501, client_id=3)]) == targets_of(
        BY_TYPE, [contract(id=501, client_id=3)]
    )
    assert [t.client_id for t in targets_of(rule, [contract()])] == []


def test_reasons_quantity_and_sites_are_reported():
    rule = Rule(
        software="SentinelOne",
        contract_types=["Managed Security"],
        items=[ItemMatch(id=102), ItemMatch(name="SentinelOne Complete")],
    )
    lines = [
        line(id=801, qty_order=20),
        line(id=802, qty_order=5, item_code="S1"),
        line(id=803, qty_order=0),
    ]
    (target,) = targets_of(rule, [contract(end_date=day(10))], [invoice(lines)])
    assert target.client_name == "Contoso Ltd"
    assert target.quantity == 25
    assert [s.id for s in target.sites] == [11, 12]  # the inactive site is left out
    kinds = [
        (type(r), getattr(r, "line_id", None) or getattr(r, "contract_id", None))
        for r in target.reasons
    ]
    assert kinds == [(ContractReason, 500), (InvoiceLineReason, 801), (InvoiceLineReason, 802)]
    assert target.reasons[1].matched_by == "id 102"


def test_in_grace_reason_is_flagged():
    (target,) = targets_of(BY_TYPE, [contract(end_date=day(-3), expired=True)])
    assert target.reasons[0].in_grace is True


def test_site_scope_limits_sites_and_site_bound_records():
    rule = Rule(software="Huntress", contract_types=["Managed Security"], site_ids=[12])
    (target,) = targets_of(rule, [contract(site_id=12)])
    assert [s.id for s in target.sites] == [12]
    assert targets_of(rule, [contract(site_id=11)]) == []
    assert [t.client_id for t in targets_of(rule, [contract(site_id=None)])] == [1]


def test_targets_sort_by_name():
    found = targets_of(BY_TYPE, [contract(client_id=3), contract(id=501, client_id=1)])
    assert [t.client_name for t in found] == ["Contoso Ltd", "Fabrikam, Inc."]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"software": "Huntress"}, "at least one contract type or item"),
        ({"software": "", "contract_types": ["x"]}, "at least 1 character"),
        ({"software": "A/B", "contract_types": ["x"]}, "may not contain"),
        ({"software": "S1", "items": [{"id": 1, "name": "x"}]}, "exactly one of id, code or name"),
        ({"software": "S1", "items": [{}]}, "exactly one of id, code or name"),
        (
            {"software": "S1", "contract_types": ["x"], "grace_days": -1},
            "greater than or equal to 0",
        ),
        ({"software": "S1", "contract_types": ["x"], "colour": "red"}, "Extra inputs"),
    ],
)
def test_invalid_rules_are_refused(document, message):
    with pytest.raises(ValidationError, match=message):
        Rule.model_validate(document)


def test_rule_set_round_trips_as_json_and_refuses_duplicates():
    rules = RuleSet(rules=[BY_TYPE, BY_ITEM_ID])
    assert RuleSet.model_validate_json(rules.model_dump_json()) == rules
    with pytest.raises(ValidationError, match="more than once"):
        RuleSet(rules=[BY_ITEM_ID, BY_ITEM_NAME.model_copy(update={"software": " sentinelone"})])


def test_normalise_and_closest():
    assert normalise("  Managed\tSECURITY ") == "managed security"
    assert (
        closest("Managed Securty", ["Managed Security", "Managed Services", "Backup"])[0]
        == "Managed Security"
    )
