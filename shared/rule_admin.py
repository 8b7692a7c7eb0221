"""Rules administration: list, read, create/replace, delete, import and export.

A change is stored, then applied at once to the current generation (and to a held one, so an
approval does not bring back the old rule) by re-resolving from the stored snapshot: no waiting for
the next HaloPSA sync.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ValidationError

from shared.api_models import RulesImported, RuleView
from shared.catalog import Catalog, rule_warnings, scope_warnings
from shared.generation import Manifest, apply_rules, read_catalog, read_manifest
from shared.halo_models import describe_error
from shared.problems import ApiError, json_object, problem
from shared.queries import snapshot_of
from shared.rules import Rule, RuleSet, normalise
from shared.store import Store, StoreError

MAX_BODY = 256 * 1024


def stored_rules(store: Store) -> dict[str, Rule]:
    """Every stored rule by key (documents that no longer validate are skipped)."""
    rules: dict[str, Rule] = {}
    for document in store.rule_documents():
        try:
            rule = Rule.model_validate(document)
        except ValidationError:
            continue
        rules[rule.key] = rule
    return rules


def export_rules(store: Store) -> RuleSet:
    """The stored rules in the import format, sorted by software."""
    return RuleSet(rules=sorted(stored_rules(store).values(), key=lambda r: r.key))


def list_rules(store: Store) -> list[RuleView]:
    """Every rule with its current target count and warnings."""
    manifest, catalog = _current(store)
    return [
        _view(r, manifest, catalog)
        for r in sorted(stored_rules(store).values(), key=lambda r: r.key)
    ]


def get_rule(store: Store, software: str) -> RuleView:
    """One rule, or a 404 naming the known ones."""
    rules = stored_rules(store)
    rule = rules.get(normalise(software))
    if rule is None:
        raise _unknown(software, rules)
    manifest, catalog = _current(store)
    return _view(rule, manifest, catalog)


def put_rule(store: Store, software: str, body: bytes, today: date) -> tuple[RuleView, bool]:
    """Create or replace the rule for `software` from a JSON body; (view, created)."""
    document = json_object(body, MAX_BODY)
    document.setdefault("software", software)
    rule = _validate(document)
    if rule.key != normalise(software):
        raise ApiError(
            problem(
                400, "bad-rule", f"the body names software {rule.software!r}, the URL {software!r}"
            )
        )
    created = rule.key not in stored_rules(store)
    store.put_rule_document(rule.key, rule.model_dump(mode="json"))
    _apply(store, [rule], [], today)
    manifest, catalog = _current(store)
    return _view(rule, manifest, catalog), created


def delete_rule(store: Store, software: str, today: date) -> None:
    """Delete a rule and drop its targets from the current generation; 404 if there is none."""
    key = normalise(software)
    if not store.delete_rule(key):
        raise _unknown(software, stored_rules(store))
    _apply(store, [], [key], today)


def import_rules(store: Store, body: bytes, today: date) -> RulesImported:
    """Replace every rule with the rule set in the body (the format `export_rules` writes)."""
    document = json_object(body, MAX_BODY)
    try:
        rule_set = RuleSet.model_validate(document)
    except ValidationError as error:
        raise ApiError(problem(400, "bad-rule", describe_error(error))) from None
    before = stored_rules(store)
    incoming = {r.key: r for r in rule_set.rules}
    for rule in rule_set.rules:
        store.put_rule_document(rule.key, rule.model_dump(mode="json"))
    deleted = [k for k in before if k not in incoming]
    for key in deleted:
        store.delete_rule(key)
    changed = [r for k, r in incoming.items() if before.get(k) != r]
    _apply(store, changed, deleted, today)
    manifest, catalog = _current(store)
    return RulesImported(
        created=sorted(r.software for k, r in incoming.items() if k not in before),
        replaced=sorted(r.software for k, r in incoming.items() if k in before),
        deleted=sorted(before[k].software for k in deleted),
        rules=[_view(r, manifest, catalog) for r in sorted(incoming.values(), key=lambda r: r.key)],
    )


def _apply(store: Store, rules: list[Rule], removed: list[str], today: date) -> None:
    if not rules and not removed:
        return
    pointer = store.current()
    held = store.held()
    for generation in {g for g in (pointer and pointer.generation, held and held.generation) if g}:
        apply_rules(
            store, generation, snapshot_of(store, generation), rules, today, removed=removed
        )


def _current(store: Store) -> tuple[Manifest | None, Catalog | None]:
    pointer = store.current()
    if pointer is None:
        return None, None
    try:
        return read_manifest(store, pointer.generation)[0], read_catalog(store, pointer.generation)
    except StoreError:
        return None, None


def _view(rule: Rule, manifest: Manifest | None, catalog: Catalog | None) -> RuleView:
    entry = manifest.rules.get(rule.key) if manifest else None
    return RuleView(
        rule=rule,
        targets=entry.targets if entry else None,
        warnings=(rule_warnings(rule, catalog) if catalog else []) + scope_warnings(rule),
    )


def _validate(document: dict[str, Any]) -> Rule:
    try:
        return Rule.model_validate(document)
    except ValidationError as error:
        raise ApiError(problem(400, "bad-rule", describe_error(error))) from None


def _unknown(software: str, rules: dict[str, Rule]) -> ApiError:
    return ApiError(
        problem(
            404,
            "unknown-software",
            f"no rule for software {software!r}",
            known=sorted(r.software for r in rules.values()),
        )
    )
