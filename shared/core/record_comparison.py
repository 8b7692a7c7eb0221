"""Report records against REST records: what coverage sees of each (DESIGN.md section 4), and
each field on which the two disagree as a Finding."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from shared.records.halo import (
    Client,
    Contract,
    Item,
    RecurringInvoice,
    RecurringInvoiceLine,
    Site,
    as_date,
)

# A run record keeps this many findings in full (and the count of all).
FINDINGS_KEPT = 20
_VALUE_CHARS = 80


@dataclass(frozen=True, slots=True)
class Finding:
    """One field on which the report read and REST disagree (or that REST could not confirm)."""

    kind: str
    record_id: str
    field: str
    report: str
    rest: str

    def text(self) -> str:
        """One line for the run record: ids and both values."""
        return f"{self.kind} {self.record_id} {self.field}: report {self.report}, REST {self.rest}"


@dataclass(frozen=True, slots=True)
class Proof:
    """What the REST sample showed: findings, records compared per type, requests it cost."""

    findings: tuple[Finding, ...] = ()
    compared: Mapping[str, int] = field(default_factory=dict)
    requests: int = 0

    def record(self) -> dict[str, Any]:
        """The proof as a run record stores it (bounded)."""
        return {
            "compared": dict(self.compared),
            "requests": self.requests,
            "findings": len(self.findings),
            "samples": [f.text() for f in self.findings[:FINDINGS_KEPT]],
        }


def _shown(value: Any) -> str:
    text = "none" if value is None else repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= _VALUE_CHARS else text[: _VALUE_CHARS - 3] + "..."


def _differences(
    kind: str, record_id: Any, report: Mapping[str, Any], rest: Mapping[str, Any]
) -> list[Finding]:
    return [
        Finding(kind, str(record_id), name, _shown(report.get(name)), _shown(rest.get(name)))
        for name in sorted(set(report) | set(rest))
        if report.get(name) != rest.get(name)
    ]


# -- what coverage sees of each record (DESIGN.md section 4) -------------------------------


def _ref(value: int | None) -> int | None:
    # "Not set" in a reference is -1, 0 or -2.
    return value if value is not None and value > 0 else None


def _text(value: str) -> str:
    # Exact but for runs of whitespace: targets' reasons show these texts as they are, so a
    # difference in case is a difference too (matching alone would not care).
    return " ".join(value.split())


def client_view(client: Client) -> dict[str, Any]:
    """A client's coverage fields: its name and Entra tenants (mapping to ImmyBot by either) and
    whether it is inactive."""
    return {
        "name": _text(client.name),
        "inactive": client.inactive,
        "entra_tenant_ids": " ".join(client.entra_tenant_ids) or None,
    }


def site_view(site: Site) -> dict[str, Any]:
    """A site's fields: the client it belongs to (site scopes), its name, whether inactive."""
    return {"client_id": site.client_id, "name": _text(site.name), "inactive": site.inactive}


def contract_view(contract: Contract, today: date) -> dict[str, Any]:
    """A contract's coverage fields, and those its reasons show; `expired` only while in date
    (past its end only the dates and the grace window decide)."""
    end = as_date(contract.end_date)
    view: dict[str, Any] = {
        "client_id": contract.client_id,
        "ref": _text(contract.ref),
        "site_id": _ref(contract.site_id),
        "active": contract.active,
        "contracttype": contract.contracttype,
        "contracttype_name": _text(contract.contracttype_name),
        "start_date": as_date(contract.start_date),
        "end_date": end,
    }
    if end is None or today <= end:
        view["expired"] = contract.expired
    return view


def _window(starts: Iterable[datetime | None], ends: Iterable[datetime | None]) -> str:
    first = max((d for d in map(as_date, starts) if d is not None), default=None)
    last = min((d for d in map(as_date, ends) if d is not None), default=None)
    return f"{first or 'open'}..{last or 'open'}"


def invoice_view(invoice: RecurringInvoice) -> dict[str, Any]:
    """A recurring invoice's coverage fields: client, site, whether it is switched off (header or
    schedule) and the dates it runs between (header and schedule together)."""
    schedule = invoice.schedule
    return {
        "client_id": invoice.client_id,
        "sitenumber": _ref(invoice.sitenumber),
        "switched_off": invoice.disabled or bool(schedule and schedule.disabled),
        "runs": _window(
            (invoice.startdate, schedule.startdate if schedule else None),
            (invoice.enddate, schedule.end_date if schedule else None),
        ),
        "lines": sorted(line.id for line in invoice.lines),
    }


def line_view(line: RecurringInvoiceLine) -> dict[str, Any]:
    """A line's coverage fields: what it links to, its own codes and text, whether it bills, and
    the quantity and price its reason shows."""
    return {
        "_itemid": _ref(line.item_id),
        "item_code": _text(line.item_code),
        "item_internal_reference": _text(line.item_internal_reference),
        "item_external_reference": _text(line.item_external_reference),
        "item_shortdescription": _text(line.item_shortdescription),
        "isinactive": line.isinactive,
        "qty_order": round(line.qty_order, 6),
        "unit_price": round(line.unit_price, 6),
        "recurring_invoice_quantity_type": line.recurring_invoice_quantity_type,
        "site": _ref(line.site),
        "runs": _window((line.startdate,), (line.enddate,)),
    }


def item_view(item: Item) -> dict[str, Any]:
    """An item's coverage fields: the name and codes a rule matches on."""
    return {
        "name": _text(item.name),
        "supplier_part_code": _text(item.supplier_part_code),
        "internalreference": _text(item.internalreference),
        "externalreference": _text(item.externalreference),
    }


# -- comparison ------------------------------------------------------------------------------


def compare_records(
    kind: str,
    report: Iterable[Any],
    rest: Iterable[Any],
    view: Any,
    *,
    whole: bool = False,
) -> tuple[list[Finding], int]:
    """Findings for every REST record whose view differs from the report's record of that id, or
    that the report does not have; with `whole` (REST listed them all) also for every report
    record REST does not list (reports see past the agent's teams); and how many were compared."""
    by_id = {record.id: record for record in report}
    findings: list[Finding] = []
    compared = 0
    listed = set()
    for record in rest:
        compared += 1
        listed.add(record.id)
        mine = by_id.get(record.id)
        if mine is None:
            findings.append(Finding(kind, str(record.id), "record", "missing", "present"))
            continue
        findings += _differences(kind, record.id, view(mine), view(record))
    if whole:
        findings += [
            Finding(kind, str(key), "record", "present", "missing")
            for key in sorted(set(by_id) - listed, key=str)
        ]
    return findings, compared


def compare_invoices(
    report: Iterable[RecurringInvoice], rest: Iterable[RecurringInvoice]
) -> tuple[list[Finding], int]:
    """Invoice headers, then each line both sides hold, compared as coverage sees them."""
    findings, compared = compare_records("invoice", report, rest, invoice_view)
    by_id = {invoice.id: invoice for invoice in report}
    for invoice in rest:
        mine = by_id.get(invoice.id)
        if mine is not None:
            lines, _ = compare_records("invoice_line", mine.lines, invoice.lines, line_view)
            findings += [f for f in lines if f.field != "record"]  # the header names those
    return findings, compared


def name_contract_types(
    contracts: Sequence[Contract], named_by_rest: Iterable[Contract]
) -> tuple[list[Contract], list[Finding]]:
    """The report's contracts with `contracttype_name` from REST contracts of the same type;
    a type REST names two ways, or not at all, is a finding."""
    names: dict[int | None, str] = {}
    findings = []
    for contract in named_by_rest:
        known = names.setdefault(contract.contracttype, contract.contracttype_name)
        if known != contract.contracttype_name:
            findings.append(
                Finding(
                    "contract_type",
                    str(contract.contracttype),
                    "contracttype_name",
                    _shown(known),
                    _shown(contract.contracttype_name),
                )
            )
    unnamed = sorted({str(c.contracttype) for c in contracts if c.contracttype not in names})
    findings += [
        Finding("contract_type", t, "contracttype_name", "none", "not read") for t in unnamed
    ]
    named = [
        c.model_copy(update={"contracttype_name": names.get(c.contracttype, "")}) for c in contracts
    ]
    return named, findings
