"""The proof's comparison: what coverage sees of each record, and what counts as a disagreement."""

from __future__ import annotations

from datetime import date

from shared.core.record_comparison import (
    Finding,
    Proof,
    client_view,
    compare_invoices,
    compare_records,
    contract_view,
    invoice_view,
    name_contract_types,
)
from shared.records.halo import Client, Contract, RecurringInvoice

TODAY = date(2026, 6, 15)


def contract(**fields) -> Contract:
    base = {"id": 7, "client_id": 3, "contracttype": 2, "contracttype_name": "Managed Security"}
    return Contract.model_validate({**base, **fields})


def invoice(**fields) -> RecurringInvoice:
    base = {
        "id": -94,
        "client_id": 420,
        "disabled": False,
        "schedule": {"disabled": False, "startdate": "2024-03-01T12:00:00"},
        "lines": [{"id": 1, "_itemid": 5, "qty_order": 1}],
    }
    return RecurringInvoice.model_validate({**base, **fields})


def test_an_admin_expired_contract_in_date_is_a_finding_and_past_its_end_is_not():
    in_date = {"end_date": "2026-12-31T00:00:00"}
    found, compared = compare_records(
        "contract",
        [contract(**in_date, expired=False)],
        [contract(**in_date, expired=True)],
        lambda c: contract_view(c, TODAY),
    )
    assert compared == 1
    assert found == [Finding("contract", "7", "expired", "False", "True")]
    ended = {"end_date": "2026-06-01T00:00:00"}  # past its end only dates and grace decide
    found, _ = compare_records(
        "contract",
        [contract(**ended, expired=False)],
        [contract(**ended, expired=True)],
        lambda c: contract_view(c, TODAY),
    )
    assert found == []


def test_sentinel_dates_and_not_set_references_compare_equal():
    mine = contract(site_id=-1, start_date="1900-01-01T00:00:00", end_date="2099-12-31T00:00:00")
    theirs = contract(site_id=0, start_date=None, end_date=None)
    assert contract_view(mine, TODAY) == contract_view(theirs, TODAY)


def test_a_header_switched_off_is_the_same_as_its_schedule_switched_off():
    by_header = invoice(disabled=True)
    by_schedule = invoice(schedule={"disabled": True, "startdate": "2024-03-01T12:00:00"})
    assert invoice_view(by_header)["switched_off"] == invoice_view(by_schedule)["switched_off"]
    # But a header date the report cannot see changes when the invoice runs.
    later = invoice(startdate="2025-01-01T00:00:00")
    assert invoice_view(later)["runs"] != invoice_view(invoice())["runs"]


def test_a_line_code_only_rest_sees_is_named_with_ids_and_both_values():
    mine = invoice()
    theirs = invoice(
        lines=[{"id": 1, "_itemid": 5, "qty_order": 1, "item_internal_reference": "S1-COMPLETE"}]
    )
    found, compared = compare_invoices([mine], [theirs])
    assert compared == 1
    assert [f.text() for f in found] == [
        "invoice_line 1 item_internal_reference: report '', REST 'S1-COMPLETE'"
    ]


def test_a_listing_read_whole_also_names_records_only_the_report_has():
    report = [Client(id=1, name="A"), Client(id=2, name="B")]
    rest = [Client(id=1, name="A")]
    sample_only, _ = compare_records("client", report, rest, lambda c: {"name": c.name})
    assert sample_only == []  # a random page says nothing of the ids it does not hold
    whole, _ = compare_records("client", report, rest, lambda c: {"name": c.name}, whole=True)
    assert whole == [Finding("client", "2", "record", "present", "missing")]
    missing, _ = compare_records("client", rest, report, lambda c: {"name": c.name})
    assert missing == [Finding("client", "2", "record", "missing", "present")]


def test_a_client_whose_entra_tenants_differ_is_a_finding_and_their_case_is_not():
    entra = "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"

    def client(*ids: str) -> Client:
        return Client.model_validate(
            {"id": 3, "name": "N", "azure_tenants": [{"azure_tenant_id": i} for i in ids]}
        )

    rest = [client(entra.upper())]
    same, compared = compare_records("client", [client(entra)], rest, client_view)
    assert (same, compared) == ([], 1)
    # A report column that holds something else (here: nothing) for a sampled client.
    (finding,) = compare_records("client", [client()], rest, client_view)[0]
    assert finding.text() == f"client 3 entra_tenant_ids: report none, REST '{entra}'"


def test_contract_type_names_come_from_rest_and_a_type_it_does_not_name_is_a_finding():
    report = [contract(contracttype_name=""), contract(id=8, contracttype=9, contracttype_name="")]
    named, found = name_contract_types(report, [contract(id=99)])
    assert named[0].contracttype_name == "Managed Security"
    assert named[1].contracttype_name == ""
    assert found == [Finding("contract_type", "9", "contracttype_name", "none", "not read")]
    _, found = name_contract_types(report[:1], [contract(), contract(contracttype_name="Other")])
    assert found[0].field == "contracttype_name" and found[0].record_id == "2"


def test_a_proof_record_keeps_twenty_findings_and_counts_all():
    findings = tuple(Finding("item", str(n), "name", "'a'", "'b'") for n in range(25))
    record = Proof(findings, {"items": 25}, 3).record()
    assert record["findings"] == 25 and len(record["samples"]) == 20
    assert record["samples"][0] == "item 0 name: report 'a', REST 'b'"


def test_texts_that_reasons_show_differ_by_case_but_not_by_spacing():
    mine = contract(ref="MS-000007 ")
    assert contract_view(mine, TODAY) == contract_view(contract(ref="MS-000007"), TODAY)
    found, _ = compare_records(
        "contract", [mine], [contract(ref="ms-000007")], lambda c: contract_view(c, TODAY)
    )
    assert [f.field for f in found] == ["ref"]


def test_a_rest_count_unlike_the_records_read_is_a_finding():
    from shared.halo.listing import Listing
    from shared.halo.proof import _counted, _Listed

    report = Listing(records=[Client(id=1, name="A")])
    assert _counted("client", report, _Listed([Client(id=1, name="A")], False, 1)) == []
    assert _counted("client", report, _Listed([], False, None)) == []  # no count given
    (finding,) = _counted("client", report, _Listed([], False, 2))
    assert finding.text() == "client * record_count: report 1, REST 2"
