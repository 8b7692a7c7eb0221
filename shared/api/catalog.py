"""Catalogue answers: `GET /api/catalog`, and the ad hoc rule a `contract_type=` or `item=`
query names in the catalogue (or a 404 with the closest names)."""

from __future__ import annotations

import re

from shared.api.current import with_fresh_state
from shared.api.models import CatalogResponse
from shared.api.problems import ApiError, problem
from shared.api.targets_query import TargetsQuery
from shared.core.catalog import Catalog, scope_warnings
from shared.core.rules import ItemMatch, Rule, closest, normalise
from shared.core.text import CONTROLS, KEY_FORBIDDEN, KEY_UNSAFE_COMPAT, parse_id
from shared.store.generations import read_catalog
from shared.store.read_cache import Current
from shared.store.repository import Store


def answer_catalog(store: Store) -> CatalogResponse:
    """The contract types and recurring items of the current generation."""
    return with_fresh_state(store, lambda current: _catalog(store, current))


def _catalog(store: Store, current: Current) -> CatalogResponse:
    pointer = current.pointer
    catalog = read_catalog(store, pointer.generation)
    warnings = {e.software: scope_warnings(e.rule) for e in current.manifest.rules.values()}
    return CatalogResponse(
        generation=pointer.generation,
        synced_at=pointer.synced_at,
        contract_types=catalog.contract_types,
        items=catalog.items,
        rule_warnings={k: v for k, v in sorted(warnings.items()) if v},
    )


def ad_hoc_rule(query: TargetsQuery, catalog: Catalog) -> Rule:
    """The rule an ad hoc query stands for, or a 404 when the catalogue lacks what it names."""
    value = query.value
    if query.kind == "contract_type":
        names = [e.name for e in catalog.contract_types]
        if normalise(value) not in {normalise(n) for n in names}:
            raise ApiError(
                problem(
                    404,
                    "unknown-contract-type",
                    f"no contract type {value!r} in HaloPSA",
                    closest=closest(value, names),
                )
            )
        return Rule(software=_label(query), contract_types=[value])
    matches = [ItemMatch(name=value), ItemMatch(code=value)]
    # An item id is a positive 32-bit number in ASCII digits ("²".isdigit() is true, "0" is no
    # id); any other value is looked up as a name or code only.
    item_id = parse_id(value)
    if item_id is not None:
        matches.append(ItemMatch(id=item_id))
    known = [e.name for e in catalog.items] + [c for e in catalog.items for c in e.codes]
    ids = {e.id for e in catalog.items if e.id is not None}
    if normalise(value) not in {normalise(k) for k in known} and item_id not in ids:
        raise ApiError(
            problem(
                404,
                "unknown-item",
                f"no current recurring item {value!r} in HaloPSA",
                closest=closest(value, known),
            )
        )
    return Rule(software=_label(query), items=matches)


def _label(query: TargetsQuery) -> str:
    """`item=VALUE` as an ad hoc rule's software: shortened, and with what a rule's name may not
    hold (/ \\ # ?, their fullwidth forms) replaced, since the query value may hold them."""
    label = f"{query.kind}={query.value}"[:100]
    return re.sub(f"[{CONTROLS}{KEY_FORBIDDEN}{KEY_UNSAFE_COMPAT}]", "_", label)
