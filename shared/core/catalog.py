"""The contract types and recurring items present in a snapshot, with client counts.

An admin writes rules from these real names instead of guessing HaloPSA's spelling; rule validation
uses the same catalogue to warn about names nothing in HaloPSA carries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date

from pydantic import BaseModel, ConfigDict, Field

from shared.core.billing import contract_covers, line_covers
from shared.core.rules import Rule, closest, normalise
from shared.core.targets import Snapshot


class ContractTypeEntry(BaseModel):
    """A contract type and how many clients have one (and how many are covered today)."""

    model_config = ConfigDict(frozen=True)

    name: str
    clients: int = Field(description="Active clients with any contract of this type.")
    covered_clients: int = Field(description="Active clients whose contract covers them today.")


class ItemEntry(BaseModel):
    """A recurring invoice item and how many clients are billed for it today."""

    model_config = ConfigDict(frozen=True)

    id: int | None
    name: str
    codes: list[str]
    clients: int = Field(description="Active clients with a current line for this item.")
    quantity_fixed: float = Field(description="Sum of qty_order over fixed-quantity lines.")
    quantity_calculated: float = Field(
        description="Sum of the last calculated values over calculated-quantity lines."
    )
    calculated_unknown: int = Field(
        description="Calculated lines HaloPSA has not calculated yet (not counted as 0)."
    )
    unit_price: float | None = Field(description="The item's recurring (or base) price, if set.")


class Catalog(BaseModel):
    """What a snapshot offers to write rules against."""

    model_config = ConfigDict(frozen=True)

    contract_types: list[ContractTypeEntry]
    items: list[ItemEntry]


def build_catalog(snapshot: Snapshot, today: date) -> Catalog:
    """Count clients per contract type and per recurring item, ignoring inactive clients."""

    def active(client_id: int) -> bool:
        client = snapshot.clients.get(client_id)
        return client is not None and not client.inactive

    items = [
        _item_entry(snapshot, key, tally)
        for key, tally in _item_tallies(snapshot, today, active).items()
    ]
    return Catalog(
        contract_types=_contract_types(snapshot, today, active),
        items=sorted(items, key=lambda e: (normalise(e.name), e.id or 0)),
    )


def _contract_types(
    snapshot: Snapshot, today: date, active: Callable[[int], bool]
) -> list[ContractTypeEntry]:
    type_names: dict[str, str] = {}
    having: dict[str, set[int]] = defaultdict(set)
    covered: dict[str, set[int]] = defaultdict(set)
    for contract in snapshot.contracts:
        name = contract.contracttype_name.strip()
        if not name or not active(contract.client_id):
            continue
        key = normalise(name)
        type_names.setdefault(key, name)
        having[key].add(contract.client_id)
        if contract_covers(contract, today)[0]:
            covered[key].add(contract.client_id)
    return sorted(
        (
            ContractTypeEntry(name=type_names[k], clients=len(v), covered_clients=len(covered[k]))
            for k, v in having.items()
        ),
        key=lambda e: normalise(e.name),
    )


ItemKey = tuple[int | None, str]  # (item id, item name), or (None, the line's own text)


@dataclass(slots=True)
class _Tally:
    """What the current lines of one item add up to."""

    clients: set[int] = field(default_factory=set)
    fixed: float = 0.0
    calculated: float = 0.0
    unknown: int = 0
    codes: set[str] = field(default_factory=set)


def _item_tallies(
    snapshot: Snapshot, today: date, active: Callable[[int], bool]
) -> dict[ItemKey, _Tally]:
    tallies: dict[ItemKey, _Tally] = defaultdict(_Tally)
    for invoice in snapshot.invoices:
        if not active(invoice.client_id):
            continue
        for line in invoice.lines:
            if not line_covers(invoice, line, today):
                continue
            item = snapshot.items.get(line.item_id) if line.item_id is not None else None
            # A line without an item link is listed by its own text, so the admin sees it exists.
            text = " ".join(line.item_shortdescription.split())
            tally = tallies[(item.id, item.name) if item else (None, text)]
            tally.clients.add(invoice.client_id)
            tally.codes.update(
                code
                for code in (
                    line.item_code,
                    line.item_internal_reference,
                    line.item_external_reference,
                )
                if code.strip()
            )
            quantity = line.known_quantity
            if quantity is None:
                tally.unknown += 1
            elif line.calculated:
                tally.calculated += quantity
            else:
                tally.fixed += quantity
    return tallies


def _item_entry(snapshot: Snapshot, key: ItemKey, tally: _Tally) -> ItemEntry:
    item_id, label = key
    item = snapshot.items.get(item_id) if item_id is not None else None
    own = (item.internalreference, item.externalreference, item.supplier_part_code) if item else ()
    # The lines' own codes can be matched by a rule too, so the admin must see them.
    codes = list(dict.fromkeys([c for c in own if c] + sorted(tally.codes)))
    return ItemEntry(
        id=item_id,
        name=item.name if item else label,
        codes=codes,
        clients=len(tally.clients),
        quantity_fixed=tally.fixed,
        quantity_calculated=tally.calculated,
        calculated_unknown=tally.unknown,
        unit_price=(item.recurringprice or item.baseprice or None) if item else None,
    )


def patch_catalog(catalog: Catalog, old: Snapshot, new: Snapshot, today: date) -> Catalog:
    """`catalog` with some clients' part (`old`: a snapshot of only their records as counted in
    it) replaced by what they hold now (`new`, only them): every count is per client or a sum
    over clients, so the rest of the catalogue stays exact. An entry no client has any more is
    dropped; codes are only added (one only these clients' lines carried stays until a sync)."""
    was, now = build_catalog(old, today), build_catalog(new, today)
    types: dict[str, ContractTypeEntry] = {}
    for sign, found in ((1, catalog.contract_types), (-1, was.contract_types),
                        (1, now.contract_types)):  # fmt: skip
        for entry in found:
            name = normalise(entry.name)
            kept = types.get(name) or entry.model_copy(update={"clients": 0, "covered_clients": 0})
            types[name] = kept.model_copy(update={
                "clients": kept.clients + sign * entry.clients,
                "covered_clients": kept.covered_clients + sign * entry.covered_clients})  # fmt: skip
    items: dict[tuple[int | None, str], ItemEntry] = {}
    for sign, entries in ((1, catalog.items), (-1, was.items), (1, now.items)):
        for item in entries:
            key = (item.id, item.name if item.id is None else "")
            items[key] = _added(items.get(key), item, sign)
    return Catalog(
        contract_types=sorted(
            (e for e in types.values() if e.clients > 0), key=lambda e: normalise(e.name)
        ),
        items=sorted(
            (e for e in items.values() if e.clients > 0),
            key=lambda e: (normalise(e.name), e.id or 0),
        ),
    )


def _added(kept: ItemEntry | None, entry: ItemEntry, sign: int) -> ItemEntry:
    """An item's entry with another's counts added (`sign` 1) or taken away (-1)."""
    if kept is None:
        kept = entry.model_copy(update={"clients": 0, "quantity_fixed": 0.0,
                                        "quantity_calculated": 0.0, "calculated_unknown": 0})  # fmt: skip
    codes = kept.codes + [c for c in entry.codes if c not in kept.codes] if sign > 0 else kept.codes
    return kept.model_copy(
        update={
            "name": entry.name if sign > 0 else kept.name,
            "codes": codes,
            "clients": kept.clients + sign * entry.clients,
            "quantity_fixed": kept.quantity_fixed + sign * entry.quantity_fixed,
            "quantity_calculated": kept.quantity_calculated + sign * entry.quantity_calculated,
            "calculated_unknown": kept.calculated_unknown + sign * entry.calculated_unknown,
        }
    )


SITE_SCOPE_WARNING = (
    "site-scoped: this rule's ImmyBot tag goes on the computers at its sites, not on tenants; "
    "where a computer is comes from asset population (ASSET_SYNC plan or apply), and computers "
    "whose site is unknown are listed as unplaced in GET /api/immybot/tags "
    "(docs/immybot-setup.md)"
)


def scope_warnings(rule: Rule) -> list[str]:
    """What a rule does differently in ImmyBot (a site scope tags computers, not tenants)."""
    return [SITE_SCOPE_WARNING] if rule.site_ids is not None else []


def rule_warnings(rule: Rule, catalog: Catalog) -> list[str]:
    """Names in `rule` that nothing in the catalogue carries, with the closest known names."""
    warnings = []
    known_types = [e.name for e in catalog.contract_types]
    known_type_keys = {normalise(n) for n in known_types}
    for name in rule.contract_types:
        if normalise(name) not in known_type_keys:
            warnings.append(_unknown("contract type", name, closest(name, known_types)))
    ids = {e.id for e in catalog.items if e.id is not None}
    names = [e.name for e in catalog.items]
    codes = [c for e in catalog.items for c in e.codes]
    for match in rule.items:
        if match.id is not None and match.id not in ids:
            warnings.append(f"no current recurring line bills item id {match.id}")
        elif match.code is not None and normalise(match.code) not in {normalise(c) for c in codes}:
            warnings.append(_unknown("item code", match.code, closest(match.code, codes)))
        elif match.name is not None and normalise(match.name) not in {normalise(n) for n in names}:
            warnings.append(_unknown("item name", match.name, closest(match.name, names)))
    return warnings


def _unknown(what: str, name: str, suggestions: list[str]) -> str:
    hint = f"; did you mean {', '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    return f"no current {what} {name!r} in HaloPSA{hint}"
