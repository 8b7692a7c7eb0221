"""The coverage semantics of DESIGN.md section 4, one row per case."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from shared.core.rules import ItemMatch, Rule, RuleSet, closest, normalise
from shared.core.targets import (
    ContractReason,
    InvoiceLineReason,
    Snapshot,
    count_targets,
    resolve,
)
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site

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
    Item(
        id=102,
        name="SentinelOne Complete",
        internalreference="S1-COMPLETE",
        supplier_part_code="S1-CMPL-1M",
    ),
    Item(id=103, name="Microsoft 365 Business Premium"),
]


def contract(**fields) -> Contract:
    base = {"id": 500, "client_id": 1, "contracttype_name": "Managed Security", "ref": "MS-1"}
    return Contract.model_validate({**base, **fields})


OPEN_SCHEDULE = {
    "id": 150,
    "disabled": False,
    "startdate": "2024-03-01T12:00:00",
    "end_date": "2099-12-31T00:00:00",  # HaloPSA's "no end"
    "time": "1901-01-01T00:00:00",
}


def schedule(**fields) -> dict:
    return {**OPEN_SCHEDULE, **fields}


def invoice(lines: list[dict], **fields) -> RecurringInvoice:
    # Real recurring invoices: negative ids, a schedule, "not set" references as -1, 0, -2.
    base = {
        "id": -94,
        "client_id": 1,
        "disabled": False,
        "sitenumber": 0,
        "contract_id": 0,
        "salesorder_id": -2,
        "schedule_date": "1899-12-30T00:00:00",
        "schedule": OPEN_SCHEDULE,
        "lines": lines,
    }
    return RecurringInvoice.model_validate({**base, **fields})


def line(**fields) -> dict:
    # Shaped like the real sample's lines: linked by _itemid, item_code "", sentinel references.
    base = {
        "id": 800,
        "ihid": -94,
        "_itemid": 102,
        "item_code": "",
        "item_shortdescription": "SentinelOne Complete",
        "item_internal_reference": "",
        "item_external_reference": "",
        "qty_order": 25.0,
        "recurring_invoice_quantity_type": 0,
        "contract_id": -1,
        "recurring_invoice_id": -1,
        "asset_id": -1,
        "site": -1,
        "isinactive": False,
        "lineactiondate": "1899-12-30T00:00:00",
    }
    return {**base, **fields}


NO_DATE = "0001-01-01T00:00:00"
LINE_REF = " s1-line-REF "  # matched case-insensitive, whitespace collapsed
OLE_EPOCH = "1899-12-30T00:00:00"


def quantity(quantity_type: int, qty_order: float) -> dict:
    return {"qty_order": qty_order, "recurring_invoice_quantity_type": quantity_type}


def calc(quantity_type: int, qty_order: float, **fields) -> dict:
    """A calculated-quantity line (licences 1, users 2, devices 3, subscriptions 4)."""
    return line(**quantity(quantity_type, qty_order), **fields)


BY_TYPE = Rule(software="Huntress", contract_types=["Managed Security"], grace_days=14)
BY_ITEM_ID = Rule(software="SentinelOne", items=[ItemMatch(id=102)])
BY_ITEM_CODE = Rule(software="SentinelOne", items=[ItemMatch(code="s1-complete")])
BY_ITEM_NAME = Rule(software="SentinelOne", items=[ItemMatch(name="  sentinelone   COMPLETE ")])
BY_SUPPLIER_CODE = Rule(software="SentinelOne", items=[ItemMatch(code="S1-CMPL-1M")])
BY_LINE_CODE = Rule(software="SentinelOne", items=[ItemMatch(code="S1-LINE-REF")])


def targets_of(rule: Rule, contracts=(), invoices=()):
    snapshot = Snapshot.build(CLIENTS, SITES, contracts, invoices, ITEMS)
    return resolve(snapshot, rule, TODAY)


CONTRACT_CASES = [
    # (case, rule, contracts, expected client ids)
    ("contract in date", BY_TYPE, [contract(start_date=day(-30), end_date=day(30))], [1]),
    ("contract open-ended (no end)", BY_TYPE, [contract(start_date=day(-30))], [1]),
    ("contract end 2099 is open", BY_TYPE, [contract(end_date="2099-12-31T00:00:00")], [1]),
    ("contract end 0001-01-01 is open", BY_TYPE, [contract(end_date="0001-01-01T00:00:00")], [1]),
    ("contract start 1899-12-30 is no start", BY_TYPE, [contract(start_date="1899-12-30")], [1]),
    ("contract start 1900-01-01 is no start", BY_TYPE, [contract(start_date="1900-01-01")], [1]),
    ("contract ends today", BY_TYPE, [contract(end_date=day(0))], [1]),
    ("contract starts today", BY_TYPE, [contract(start_date=day(0))], [1]),
    ("contract starts tomorrow", BY_TYPE, [contract(start_date=day(1))], []),
    ("contract active false", BY_TYPE, [contract(active=False)], []),
    ("contract expired before its end date", BY_TYPE, [contract(end_date=day(30), expired=True)], []),
    ("contract expired, no end date", BY_TYPE, [contract(expired=True)], []),
    ("contract expired, in grace", BY_TYPE, [contract(end_date=day(-14), expired=True)], [1]),
    ("contract expired, past grace", BY_TYPE, [contract(end_date=day(-15), expired=True)], []),
    ("contract ended, not flagged, past grace", BY_TYPE, [contract(end_date=day(-15))], []),
    ("contract end, Z, 7 digits", BY_TYPE, [contract(end_date=day(0)[:10] + "T23:59:59.9990000Z")], [1]),
    ("contract end, +00:00, past grace", BY_TYPE, [contract(end_date=day(-15)[:10] + "T00:00+00:00")], []),
    ("contract of another type", BY_TYPE, [contract(contracttype_name="Backup")], []),
    ("contract type case and spaces", BY_TYPE, [contract(contracttype_name=" managed  SECURITY ")], [1]),
    ("contract of an inactive client", BY_TYPE, [contract(client_id=2)], []),
    ("contract client id as decimal", BY_TYPE, [contract(client_id=3.0)], [3]),
    ("contract client id as string", BY_TYPE, [contract(client_id="3")], [3]),
]  # fmt: skip

INVOICE_CASES = [
    # (case, rule, invoices, expected client ids)
    ("live invoice, fixed line qty 25", BY_ITEM_ID, [invoice([line()])], [1]),
    ("negative invoice id", BY_ITEM_ID, [invoice([line()], id=-1)], [1]),
    ("header disabled", BY_ITEM_ID, [invoice([line()], disabled=True)], []),
    ("no schedule at all", BY_ITEM_ID, [invoice([line()], schedule=None)], [1]),
    ("schedule disabled", BY_ITEM_ID, [invoice([line()], schedule=schedule(disabled=True))], []),
    ("schedule not started", BY_ITEM_ID, [invoice([line()], schedule=schedule(startdate=day(1)))], []),
    ("schedule starts today", BY_ITEM_ID, [invoice([line()], schedule=schedule(startdate=day(0)))], [1]),
    ("schedule ended", BY_ITEM_ID, [invoice([line()], schedule=schedule(end_date=day(-1)))], []),
    ("schedule ends today", BY_ITEM_ID, [invoice([line()], schedule=schedule(end_date=day(0)))], [1]),
    ("schedule start sentinel", BY_ITEM_ID, [invoice([line()], schedule=schedule(startdate=NO_DATE))], [1]),
    ("header ended", BY_ITEM_ID, [invoice([line()], enddate=day(-1))], []),
    ("header not started", BY_ITEM_ID, [invoice([line()], startdate=day(3))], []),
    ("header end 2099 is open", BY_ITEM_ID, [invoice([line()], enddate="2099-12-31T00:00:00")], [1]),
    ("fixed line qty 0 bills nothing", BY_ITEM_ID, [invoice([line(qty_order=0.0)])], []),
    ("licences line qty 0 (calculated)", BY_ITEM_ID, [invoice([calc(1, 0.0)])], [1]),
    ("users line qty 0 (calculated)", BY_ITEM_ID, [invoice([calc(2, 0.0)])], [1]),
    ("devices line qty 0 (calculated)", BY_ITEM_ID, [invoice([calc(3, 0.0)])], [1]),
    ("subscriptions line qty 0 (calculated)", BY_ITEM_ID, [invoice([calc(4, 0.0)])], [1]),
    ("calculated line with last value 14", BY_ITEM_ID, [invoice([calc(1, 14.0)])], [1]),
    ("calculated line but inactive", BY_ITEM_ID, [invoice([calc(2, 0.0, isinactive=True)])], []),
    ("line inactive", BY_ITEM_ID, [invoice([line(isinactive=True)])], []),
    ("line ended", BY_ITEM_ID, [invoice([line(enddate=day(-1))])], []),
    ("line starts later", BY_ITEM_ID, [invoice([line(startdate=day(5))])], []),
    ("line dates are sentinels", BY_ITEM_ID, [invoice([line(startdate=OLE_EPOCH, enddate=NO_DATE)])], [1]),
    ("line end 2099 is open", BY_ITEM_ID, [invoice([line(enddate="2099-12-31T00:00:00")])], [1]),
    ("line of an inactive client", BY_ITEM_ID, [invoice([line()], client_id=2)], []),
    ("other item", BY_ITEM_ID, [invoice([line(_itemid=103, item_shortdescription="M365")])], []),
    ("item id as decimal", BY_ITEM_ID, [invoice([line(_itemid=102.0)])], [1]),
    ("code: item internalreference", BY_ITEM_CODE, [invoice([line()])], [1]),
    ("code: item supplier_part_code", BY_SUPPLIER_CODE, [invoice([line()])], [1]),
    ("code: line item_code", BY_ITEM_CODE, [invoice([line(_itemid=-1, item_code="S1-Complete")])], [1]),
    ("code: line internal ref", BY_LINE_CODE, [invoice([line(item_internal_reference=LINE_REF)])], [1]),
    ("code: line external ref", BY_LINE_CODE, [invoice([line(item_external_reference=LINE_REF)])], [1]),
    ("code: empty codes never match", BY_LINE_CODE, [invoice([line(_itemid=-1)])], []),
    ("name: line short description", BY_ITEM_NAME, [invoice([line(_itemid=-1)])], [1]),
    ("name: item record's name", BY_ITEM_NAME, [invoice([line(item_shortdescription="S1")])], [1]),
    ("name: id of another item", BY_ITEM_NAME, [invoice([line(_itemid=103, item_shortdescription="x")])], []),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "rule", "contracts", "expected"),
    CONTRACT_CASES,
    ids=[c[0] for c in CONTRACT_CASES],
)
def test_contract_coverage(case, rule, contracts, expected):
    assert [t.client_id for t in targets_of(rule, contracts)] == expected


@pytest.mark.parametrize(
    ("case", "rule", "invoices", "expected"),
    INVOICE_CASES,
    ids=[c[0] for c in INVOICE_CASES],
)
def test_invoice_line_coverage(case, rule, invoices, expected):
    assert [t.client_id for t in targets_of(rule, (), invoices)] == expected


SCOPED = Rule(
    software="SentinelOne",
    contract_types=["Managed Security"],
    items=[ItemMatch(id=102)],
    site_ids=[12],
    exclude_clients=[3],
)
SCOPE_CASES = [
    # (case, contracts, invoices, expected client ids)
    ("contract at the scoped site", [contract(site_id=12)], [], [1]),
    ("contract at another site", [contract(site_id=11)], [], []),
    ("contract with no site (-1)", [contract(site_id=-1)], [], [1]),
    ("invoice at another site", [], [invoice([line()], sitenumber=11)], []),
    ("invoice with sitenumber 0", [], [invoice([line()], sitenumber=0)], [1]),
    ("line bound to another site", [], [invoice([line(site=11)])], []),
    ("line bound to the scoped site", [], [invoice([line(site=12.0)])], [1]),
    ("excluded client's contract", [contract(client_id=3)], [], []),
    ("excluded client's invoice", [], [invoice([line()], client_id=3)], []),
]


@pytest.mark.parametrize(
    ("case", "contracts", "invoices", "expected"), SCOPE_CASES, ids=[c[0] for c in SCOPE_CASES]
)
def test_site_scope_and_exclusions(case, contracts, invoices, expected):
    assert [t.client_id for t in targets_of(SCOPED, contracts, invoices)] == expected


QUANTITY_CASES = [
    # (case, line fields, quantity_kind, quantity_type, quantity)
    ("fixed 25", {}, "fixed", "fixed", 25.0),
    ("licences, last value 14", quantity(1, 14.0), "calculated", "licences", 14.0),
    ("users, not calculated yet", quantity(2, 0.0), "calculated", "users", None),
    ("devices, not calculated yet", quantity(3, 0.0), "calculated", "devices", None),
    ("subscriptions, 3", quantity(4, 3.0), "calculated", "subscriptions", 3.0),
    ("undocumented type 9", quantity(9, 0.0), "calculated", "type 9", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "fields", "kind", "quantity_type", "quantity"),
    QUANTITY_CASES,
    ids=[c[0] for c in QUANTITY_CASES],
)
def test_line_quantity_is_fixed_or_calculated_never_a_false_zero(
    case, fields, kind, quantity_type, quantity
):
    (target,) = targets_of(BY_ITEM_ID, (), [invoice([line(**fields)])])
    (reason,) = target.reasons
    assert (reason.quantity_kind, reason.quantity_type, reason.quantity) == (
        kind,
        quantity_type,
        quantity,
    )
    assert target.quantity == quantity  # null, not 0, while HaloPSA has not calculated it


def test_quantities_keep_fixed_and_calculated_apart():
    lines = [
        line(id=801, qty_order=20.0),
        line(id=802, qty_order=14.0, recurring_invoice_quantity_type=1),
        line(id=803, qty_order=0.0, recurring_invoice_quantity_type=2),
    ]
    (target,) = targets_of(BY_ITEM_ID, (), [invoice(lines)])
    assert target.quantities.model_dump() == {
        "fixed": 20.0,
        "calculated": 14.0,
        "calculated_unknown": 1,
    }
    assert target.quantity == 34.0
    counts = count_targets([target])
    assert (counts.quantity_fixed, counts.quantity_calculated, counts.calculated_unknown) == (
        20.0,
        14.0,
        1,
    )


def test_contract_only_target_claims_no_quantity():
    (target,) = targets_of(BY_TYPE, [contract()])
    assert target.quantity is None
    assert target.quantities.calculated_unknown == 0


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
        line(id=803, qty_order=0.0),
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
