"""HaloPSA's real payload shapes: the anonymised real recurring invoice, ids, sentinels, rejects."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pytest

from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot, resolve
from shared.halo.listing import Listing
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site
from shared.records.parsing import Cause, parse_records
from shared.sync.read import read_halo

# The real, anonymised `GET /api/RecurringInvoice/{id}` answer, kept in the repository (CI runs on a
# clone with nothing beside it); its source is ../shared/halo-openapi/, checked below where present.
SAMPLE = Path(__file__).parents[1] / "fixtures" / "recurring-invoice-by-id.sample.json"
SOURCE = (
    Path(__file__).parents[3] / "shared" / "halo-openapi" / "recurring-invoice-by-id.sample.json"
)
TODAY = date(2026, 12, 2)


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def test_the_kept_sample_is_the_real_one():
    if not SOURCE.exists():
        pytest.skip("../shared/halo-openapi is not beside this checkout")
    assert json.loads(SAMPLE.read_text(encoding="utf-8")) == json.loads(
        SOURCE.read_text(encoding="utf-8")
    )


def test_real_recurring_invoice_parses_with_zero_rejects(sample):
    parsed = parse_records(RecurringInvoice, [sample])
    assert parsed.rejects == []
    (invoice,) = parsed.records
    assert invoice.id == -94
    assert invoice.client_id == 420
    assert invoice.sitenumber is None and invoice.contract_id is None  # 0 = not set
    assert invoice.schedule is not None and invoice.schedule.end_date is None  # 2099 = open
    assert invoice.schedule.startdate == datetime(2024, 3, 1, 12, 0)
    assert len(invoice.lines) == 8
    assert all(line.item_id is not None for line in invoice.lines)  # linked by _itemid


def test_real_sample_lines_cover_client_420_except_the_inactive_one(sample):
    invoice = parse_records(RecurringInvoice, [sample]).records[0]
    line_ids = [line.id for line in invoice.lines]
    # One rule per line, matching by the line's item id: each line's coverage on its own.
    rules = {
        line.id: Rule(software=f"S{line.id}", items=[ItemMatch(id=line.item_id)])
        for line in invoice.lines
    }
    snapshot = Snapshot.build([Client(id=420, name="Example Client Ltd")], [], [], [invoice], [])
    covered = {line_id: resolve(snapshot, rule, TODAY) for line_id, rule in rules.items()}
    assert {k for k, v in covered.items() if v} == set(line_ids) - {25568}
    assert covered[25568] == []
    assert all(found[0].client_id == 420 for found in covered.values() if found)

    reasons = {k: v[0].reasons[0] for k, v in covered.items() if v}
    assert reasons[24963].quantity_kind == "fixed" and reasons[24963].quantity == 1.0
    assert reasons[24967].quantity_kind == "calculated" and reasons[24967].quantity == 14.0
    unknown = {
        k for k, r in reasons.items() if r.quantity_kind == "calculated" and r.quantity is None
    }
    assert unknown == {24964, 24965, 24966, 24968, 24568}
    assert reasons[24964].quantity_type == "users"
    assert reasons[24965].quantity_type == "licences"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0001-01-01T00:00:00", None),
        ("1899-12-30T00:00:00", None),
        ("1900-01-01T00:00:00", None),
        ("1901-12-31T23:59:59", None),
        ("1902-01-01T00:00:00", datetime(1902, 1, 1)),
        ("2099-12-31T00:00:00", None),  # an end of 2099 or later is open
        ("2098-12-31T00:00:00", datetime(2098, 12, 31)),
        ("2025-03-20T18:50:25.057", datetime(2025, 3, 20, 18, 50, 25, 57000)),
        ("2025-03-20T18:50:25.0570000Z", datetime(2025, 3, 20, 18, 50, 25, 57000)),
        ("2025-03-20T23:30:00+00:00", datetime(2025, 3, 20, 23, 30)),
        ("2025-03-20T23:30:00-05:00", datetime(2025, 3, 20, 23, 30)),  # the date as written
        ("2025-03-20", datetime(2025, 3, 20)),
        ("", None),
        (None, None),
    ],
)
def test_end_dates_parse_every_form_and_sentinel(raw, expected):
    contract = Contract.model_validate({"id": 1, "client_id": 2, "end_date": raw})
    assert contract.end_date == expected


def test_a_start_in_2099_is_a_real_date():
    contract = Contract.model_validate({"id": 1, "client_id": 2, "start_date": "2099-12-31"})
    assert contract.start_date == datetime(2099, 12, 31)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(-94, -94), (-94.0, -94), ("-94", -94), ("21.0", 21), (21.0, 21), (" 7 ", 7)],
)
def test_ids_of_any_sign_and_form(raw, expected):
    parsed = parse_records(RecurringInvoice, [{"id": raw, "client_id": 5}])
    assert parsed.rejects == [] and parsed.records[0].id == expected


@pytest.mark.parametrize("raw", ["²", "1.5", 1.5, True, "abc", float("nan")])
def test_ids_that_are_not_whole_numbers_are_rejected(raw):
    parsed = parse_records(Client, [{"id": raw, "name": "x"}])
    assert parsed.records == [] and parsed.rejects[0].cause == "invalid id"


@pytest.mark.parametrize("unset", [-1, 0, -2, "0", -1.0])
def test_unset_references_are_none_or_reject_a_required_client(unset):
    site = parse_records(Contract, [{"id": 1, "client_id": 3, "site_id": unset}])
    assert site.records[0].site_id is None
    orphan = parse_records(Contract, [{"id": 1, "client_id": unset}])
    assert orphan.records == [] and orphan.rejects[0].cause == "invalid client_id"


def test_a_malformed_line_rejects_only_itself():
    raw = {
        "id": -5,
        "client_id": 9,
        "lines": [
            {"id": 1, "_itemid": 3, "qty_order": 2.0},
            {"id": 2, "_itemid": 3, "qty_order": "lots"},
            "not a line",
            {"id": 4, "_itemid": 3, "recurring_invoice_quantity_type": None},
        ],
    }
    parsed = parse_records(RecurringInvoice, [raw])
    (invoice,) = parsed.records
    assert [line.id for line in invoice.lines] == [1, 4]
    assert invoice.lines[1].recurring_invoice_quantity_type == 0
    assert [(r.kind, r.record_id, r.cause) for r in parsed.rejects] == [
        ("invoice_lines", "2 of -5", "invalid qty_order"),
        ("invoice_lines", "#2 of -5", Cause.NOT_AN_OBJECT),
    ]
    assert "lots" not in parsed.rejects[0].reason  # values never echo: they may be customer text


def test_absent_optional_keys_and_null_strings():
    item = Item.model_validate({"id": 3, "name": None})
    assert item.name == "" and item.recurringprice == 0.0
    line_invoice = RecurringInvoice.model_validate({"id": -1, "client_id": 1, "lines": [{"id": 7}]})
    line = line_invoice.lines[0]
    assert (line.item_id, line.item_code, line.qty_order, line.calculated) == (None, "", 0.0, False)


def test_a_clients_entra_tenants_are_read_leniently_and_kept_in_one_form():
    # The AreaAzureTenant shape of HaloPSA's OpenAPI document (halo-api-v2.swagger.json.gz).
    raw = {
        "id": 3,
        "name": "Northwind Traders",
        "azure_tenants": [
            {"id": 1, "client_id": 3, "azure_tenant_id": "6F1C2D4E-8A9B-4C3D-9E2F-1A2B3C4D5E6F"},
            {"id": 2, "client_id": 3, "azure_tenant_id": "00000000-0000-0000-0000-000000000000"},
            {"id": 3, "client_id": 3, "azure_tenant_id": ""},
            {"id": 4, "client_id": 3, "azure_tenant_id": None, "azure_tenant_name": "half made"},
            {"id": 5, "client_id": 3, "azure_tenant_id": "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"},
            {"id": 6, "client_id": 3, "azure_tenant_id": "{0B5E2C1A-0000-4000-8000-00000000AB01}"},
            "not an object",
        ],
    }
    client = Client.model_validate(raw)
    assert client.entra_tenant_ids == (
        "0b5e2c1a-0000-4000-8000-00000000ab01",
        "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f",
    )
    # Stored by field name, read back as it was.
    assert Client.model_validate_json(client.model_dump_json()) == client


@pytest.mark.parametrize("azure_tenants", [None, [], "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f", {}])
def test_a_client_without_usable_entra_tenants_has_none_and_is_not_rejected(azure_tenants):
    parsed = parse_records(Client, [{"id": 1, "name": "A", "azure_tenants": azure_tenants}])
    assert parsed.rejects == []
    assert parsed.records[0].entra_tenant_ids == ()
    # Listed without includeazuretenants=true, HaloPSA leaves the key out.
    assert Client.model_validate({"id": 1, "name": "A"}).entra_tenant_ids == ()


class _Halo:
    """The listing half of HaloClient, serving fixed raw records."""

    def __init__(self, **raw: list) -> None:
        self.raw = raw

    def _listing(self, model, key):
        parsed = parse_records(model, self.raw.get(key, []))
        return Listing(records=parsed.records, rejects=parsed.rejects, pages=1, duplicates=0)

    async def clients(self):
        return self._listing(Client, "clients")

    async def sites(self):
        return self._listing(Site, "sites")

    async def contracts(self):
        return self._listing(Contract, "contracts")

    async def recurring_invoices(self):
        return self._listing(RecurringInvoice, "invoices")

    async def items(self):
        return self._listing(Item, "items")


async def test_records_of_a_rejected_client_are_counted_as_such():
    halo = _Halo(
        clients=[{"id": 1, "name": "Good"}, {"id": 2, "name": "Bad", "inactive": "maybe"}],
        sites=[{"id": 10, "name": "HQ", "client_id": 2}],
        contracts=[{"id": 20, "client_id": 2}, {"id": 21, "client_id": 99}],
        invoices=[
            {"id": -1, "client_id": 2, "lines": [{"id": 5}]},
            {"id": -2, "client_id": 1, "lines": [{"id": 6}, {"id": "x"}]},
        ],
    )
    data = await read_halo(halo)  # type: ignore[arg-type]
    causes = sorted((r.kind, r.record_id, r.cause) for r in data.rejects)
    assert causes == [
        ("clients", "2", "invalid inactive"),
        ("contracts", "20", Cause.CLIENT_REJECTED),
        ("contracts", "21", Cause.CLIENT_UNKNOWN),
        ("invoice_lines", "x of -2", "invalid id"),
        ("invoices", "-1", Cause.CLIENT_REJECTED),
        ("sites", "10", Cause.CLIENT_REJECTED),
    ]
    assert data.read == {
        "clients": 2,
        "sites": 1,
        "contracts": 2,
        "invoices": 2,
        "invoice_lines": 3,
        "items": 0,
    }
    assert [i.id for i in data.snapshot.invoices] == [-2]
