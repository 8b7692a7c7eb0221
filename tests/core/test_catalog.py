"""The catalogue of contract types and recurring items, and the warnings rules get from it."""

from __future__ import annotations

from datetime import date

from shared.core.catalog import SITE_SCOPE_WARNING, build_catalog, rule_warnings, scope_warnings
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot
from shared.records.halo import Client, Contract, Item, RecurringInvoice

TODAY = date(2026, 3, 1)
CLIENTS = [
    Client(id=1, name="Contoso"),
    Client(id=2, name="Fabrikam"),
    Client(id=3, name="Old", inactive=True),
]


def contract(id: int, client_id: int, kind: str, end: str | None = None) -> Contract:
    return Contract.model_validate(
        {"id": id, "client_id": client_id, "contracttype_name": kind, "end_date": end}
    )


def invoice(id: int, client_id: int, *lines: dict) -> RecurringInvoice:
    return RecurringInvoice.model_validate({"id": id, "client_id": client_id, "lines": list(lines)})


def catalog_of(contracts=(), invoices=(), items=()):
    return build_catalog(Snapshot.build(CLIENTS, [], contracts, invoices, items), TODAY)


def test_contract_types_count_active_clients_and_those_covered_today():
    found = catalog_of(
        [
            contract(1, 1, "Managed"),
            contract(2, 2, " managed ", end="2026-01-01"),  # ended: has one, not covered
            contract(3, 3, "Managed"),  # an inactive client is not counted
            contract(4, 1, "Break-fix"),
            contract(5, 2, "  "),  # no type name: not listed
        ]
    )
    assert [(e.name, e.clients, e.covered_clients) for e in found.contract_types] == [
        ("Break-fix", 1, 1),
        ("Managed", 2, 1),
    ]


def test_items_add_fixed_calculated_and_unknown_quantities_apart():
    items = [Item(id=50, name="M365", internalreference="M365-BP", recurringprice=12.5)]
    found = catalog_of(
        invoices=[
            invoice(1, 1, {"id": 1, "_itemid": 50, "qty_order": 3, "item_code": "SKU-9"}),
            invoice(
                2, 2, {"id": 2, "_itemid": 50, "qty_order": 7, "recurring_invoice_quantity_type": 2}
            ),
            invoice(
                3, 2, {"id": 3, "_itemid": 50, "qty_order": 0, "recurring_invoice_quantity_type": 2}
            ),
        ],
        items=items,
    )
    [entry] = found.items
    assert (entry.id, entry.name, entry.clients) == (50, "M365", 2)
    assert (entry.quantity_fixed, entry.quantity_calculated, entry.calculated_unknown) == (3, 7, 1)
    assert entry.codes == ["M365-BP", "SKU-9"]
    assert entry.unit_price == 12.5


def test_a_line_without_an_item_is_listed_by_its_text():
    found = catalog_of(
        invoices=[
            invoice(1, 1, {"id": 1, "qty_order": 2, "item_shortdescription": " Backup   10GB "})
        ]
    )
    [entry] = found.items
    assert (entry.id, entry.name, entry.unit_price) == (None, "Backup 10GB", None)


def test_rule_warnings_name_what_halopsa_lacks_with_suggestions():
    items = [Item(id=50, name="Microsoft 365")]
    found = catalog_of(
        [contract(1, 1, "Managed")],
        [invoice(1, 1, {"id": 1, "_itemid": 50, "qty_order": 1})],
        items,
    )
    rule = Rule(
        software="Office",
        contract_types=["Managd", "Managed"],
        items=[ItemMatch(id=99), ItemMatch(name="Microsoft 356"), ItemMatch(id=50)],
    )
    assert rule_warnings(rule, found) == [
        "no current contract type 'Managd' in HaloPSA; did you mean 'Managed'?",
        "no current recurring line bills item id 99",
        "no current item name 'Microsoft 356' in HaloPSA; did you mean 'Microsoft 365'?",
    ]


def test_only_a_site_scoped_rule_gets_the_scope_warning():
    assert scope_warnings(Rule(software="A", contract_types=["X"])) == []
    scoped = Rule(software="A", contract_types=["X"], site_ids=[4])
    assert scope_warnings(scoped) == [SITE_SCOPE_WARNING]


def test_a_catalogue_patched_for_some_clients_is_the_whole_catalogue_built_again():
    from shared.core.catalog import patch_catalog
    from shared.core.client_patch import snapshot_of
    from shared.core.generation import ClientRecord

    items = [Item(id=50, name="M365", internalreference="M365-BP"), Item(id=51, name="Backup")]
    line = {"id": 1, "_itemid": 50, "qty_order": 3}
    before = {
        1: ClientRecord(CLIENTS[0], [], [contract(1, 1, "Managed")], [invoice(1, 1, line)]),
        2: ClientRecord(
            CLIENTS[1],
            [],
            [contract(2, 2, "Managed")],
            [invoice(2, 2, {**line, "id": 2, "qty_order": 4})],
        ),
    }
    # Client 2 loses its contract and its M365 line, and gains a Backup line and a new type.
    after = {
        **before,
        2: ClientRecord(
            CLIENTS[1],
            [],
            [contract(3, 2, "Break-fix")],
            [invoice(2, 2, {"id": 3, "_itemid": 51, "qty_order": 1, "item_code": "BK-1"})],
        ),
    }

    def whole(records: dict[int, ClientRecord]):
        return build_catalog(snapshot_of(records.values(), items), TODAY)

    patched = patch_catalog(
        whole(before), snapshot_of([before[2]], items), snapshot_of([after[2]], items), TODAY
    )
    assert patched == whole(after)
    assert [e.name for e in patched.contract_types] == ["Break-fix", "Managed"]
    assert [(e.name, e.clients, e.quantity_fixed) for e in patched.items] == [
        ("Backup", 1, 1.0),
        ("M365", 1, 3.0),
    ]
