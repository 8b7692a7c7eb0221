"""Rules administration: list, read, create/replace, delete, import and export.

A change is stored, then applied at once to the current generation (and to a held one, so an
approval does not bring back the old rule) by re-resolving from the stored snapshot: no waiting for
the next HaloPSA sync. What the edit changed in the current generation's targets goes to the
change log (cause `rule`), as a publish's does.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

from pydantic import ValidationError

from shared.api.current import keep_snapshot, snapshot_of
from shared.api.models import RulesImported, RuleView, RuleWritten
from shared.api.problems import ApiError, json_object, problem
from shared.api.references import checked_rules
from shared.core.catalog import Catalog, rule_warnings, scope_warnings
from shared.core.changes import Cause, RuleTargets
from shared.core.generation import Manifest
from shared.core.merge_patch import merge_patch
from shared.core.rules import (
    DUPLICATE_SOFTWARE,
    MAX_RULES,
    MAX_SOFTWARE,
    Rule,
    RuleSet,
    normalise,
    rule_changes,
)
from shared.core.text import CALLER, SOFTWARE_PATTERN, checked_text
from shared.records.parsing import describe_error
from shared.store.base import MAX_ENTITY_CHARS, StoreError, check_key
from shared.store.generations import AppliedRules, apply_rules, read_catalog, read_manifest
from shared.store.repository import Store
from shared.sync.changes import record_changes, rule_targets

log = logging.getLogger("halo_immy.api")

MAX_BODY = 256 * 1024
# What a PATCH body may be: a JSON merge patch (RFC 7386), or plain JSON meaning the same.
PATCH_TYPES = ("application/merge-patch+json", "application/json")
# Every rule's entry (the rule plus its counts and unmapped clients) sits in the generation's
# manifest, one entity of at most MAX_ENTITY_CHARS: the rules themselves may take a third of it.
MAX_RULES_CHARS = MAX_ENTITY_CHARS // 3


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
    key = route_key(software)
    rules = stored_rules(store)
    rule = rules.get(key) if key else None
    if rule is None:
        raise _unknown(software, rules)
    manifest, catalog = _current(store)
    return _view(rule, manifest, catalog)


def route_key(software: str) -> str | None:
    """The key of a software named in a URL; a 400 if no rule could ever have that name, and
    None if only its normalised form is not storable (then no rule has it: a 404)."""
    try:
        checked_text(SOFTWARE_PATTERN, MAX_SOFTWARE)(software)
    except ValueError as error:
        raise ApiError(problem(400, "bad-rule-name", f"software {error}")) from None
    key = normalise(software)
    if not key:
        raise ApiError(problem(400, "bad-rule-name", "software may not be empty"))
    try:
        return check_key(key)
    except ValueError:
        return None


def put_rule(store: Store, software: str, body: bytes, today: date) -> tuple[RuleWritten, bool]:
    """Create or replace the rule for `software` from a JSON body; (answer, created). A
    replacement is whole: the answer's `replaced` lists what the rule before it had that the
    body left out (dropped) or gave another value (changed)."""
    key = route_key(software)
    document = json_object(body, MAX_BODY)
    document.setdefault("software", software)
    return _write(store, software, key, document, today)


def patch_rule(
    store: Store, software: str, body: bytes, content_type: str | None, today: date
) -> RuleWritten:
    """Change the members of `software`'s rule a JSON merge patch (RFC 7386) names: a value
    replaces the member, null takes it back to its default. The result is validated as a PUT
    body is; 404 when there is no such rule."""
    key = route_key(software)
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in PATCH_TYPES:
        raise ApiError(
            problem(415, "unsupported-media-type", f"a PATCH body is {' or '.join(PATCH_TYPES)}"),
            {"Accept-Patch": ", ".join(PATCH_TYPES)},
        )
    patch = json_object(body, MAX_BODY)
    rules = stored_rules(store)
    before = rules.get(key) if key else None
    if before is None:
        raise _unknown(software, rules)
    try:
        document = merge_patch(before.model_dump(mode="json"), patch)
    except RecursionError:
        raise ApiError(problem(400, "bad-json", "the body is nested too deeply")) from None
    # A patch that removes the name leaves the URL's, as a PUT body without one does.
    document.setdefault("software", software)
    return _write(store, software, key, document, today, rules, patched=True)[0]


def _write(
    store: Store,
    software: str,
    key: str | None,
    document: dict[str, Any],
    today: date,
    rules: dict[str, Rule] | None = None,
    *,
    patched: bool = False,
) -> tuple[RuleWritten, bool]:
    """Validate, store and apply one rule document for the URL's `software`; (answer, created).
    `rules`: the stored rules, if the caller has read them (else read once the body is valid)."""
    rule = _validate(document, patched=patched)
    if key is None:
        raise ApiError(problem(400, "bad-rule-name", "software may not contain / \\ # ?"))
    if rule.key != key:
        # 409: the body names another rule than the URL; not a malformed request.
        raise ApiError(
            problem(
                409,
                "software-mismatch",
                f"the body names software {rule.software!r}, the URL {software!r}",
            )
        )
    if rules is None:
        rules = stored_rules(store)
    before = rules.get(rule.key)
    _check_limits({**rules, rule.key: rule}.values())
    found = checked_rules(store, [rule])
    store.put_rule_document(rule.key, rule.model_dump(mode="json"))
    manifest, catalog = _served(store, _apply(store, [rule], [], today))
    view = _view(rule, manifest, catalog, found[rule.key])
    replaced = rule_changes(before, rule) if before is not None else []
    return RuleWritten(**dict(view), replaced=replaced), before is None


def delete_rule(store: Store, software: str, today: date) -> None:
    """Delete a rule and drop its targets from the current generation; 404 if there is none."""
    key = route_key(software)
    # Not stored, yet still in a generation: an earlier delete stored its deletion and failed
    # before re-resolving (a 503 whose retry this is). Finish it rather than answer 404.
    if key is None or not (store.delete_rule(key) or _applied_somewhere(store, key)):
        raise _unknown(software, stored_rules(store))
    _apply(store, [], [key], today)


def import_rules(store: Store, body: bytes, today: date) -> RulesImported:
    """Replace every rule with the rule set in the body (the format `export_rules` writes).

    All or nothing: the whole set is validated, against the storage limits too, before the
    first rule is written.
    """
    document = json_object(body, MAX_BODY)
    listed = document.get("rules")
    if isinstance(listed, list):
        # Too many to store is a 413 (as rules too large together are), whatever else is wrong.
        _check_count(len(listed))
    try:
        rule_set = RuleSet.model_validate(document, strict=True, context=CALLER)
    except ValidationError as error:
        duplicate = any(e["type"] == DUPLICATE_SOFTWARE for e in error.errors())
        status, slug = (409, "duplicate-software") if duplicate else (400, "bad-rule")
        raise ApiError(problem(status, slug, _describe(error))) from None
    _check_limits(rule_set.rules)
    found = checked_rules(store, rule_set.rules, by_rule=True)
    before = stored_rules(store)
    incoming = {r.key: r for r in rule_set.rules}
    changed = [r for k, r in incoming.items() if before.get(k) != r]
    # An unchanged rule is already stored as it is.
    store.put_rule_documents({r.key: r.model_dump(mode="json") for r in changed})
    deleted = [k for k in before if k not in incoming]
    store.delete_rules(deleted)
    # Against the generations too: a retry after a failure between storing and applying finds
    # every rule stored already, yet the generations still answer from the old rules.
    manifest, catalog = _served(store, _apply(store, changed, deleted, today, wanted=incoming))
    return RulesImported(
        created=sorted(r.software for k, r in incoming.items() if k not in before),
        replaced=sorted(r.software for k, r in incoming.items() if k in before),
        deleted=sorted(before[k].software for k in deleted),
        rules=[
            _view(r, manifest, catalog, found[r.key])
            for r in sorted(incoming.values(), key=lambda r: r.key)
        ],
    )


def _check_limits(rules: Iterable[Rule]) -> None:
    """A 413 when the rules would not fit the generation manifest (one table entity)."""
    rules = list(rules)
    _check_count(len(rules))
    size = sum(len(r.model_dump_json()) for r in rules)
    if size > MAX_RULES_CHARS:
        raise ApiError(
            problem(
                413,
                "rules-too-large",
                f"the rules take {size} characters; at most {MAX_RULES_CHARS} fit in storage",
            )
        )


def _check_count(count: int) -> None:
    if count > MAX_RULES:
        raise ApiError(problem(413, "too-many-rules", f"at most {MAX_RULES} rules", rules=count))


def _generations(store: Store) -> tuple[str | None, set[str]]:
    """The current generation, and it with the held one: the ones a rule change applies to."""
    pointer, held = store.current(), store.held()
    current = pointer.generation if pointer else None
    return current, {g for g in (current, held and held.generation) if g}


def _applied_somewhere(store: Store, key: str) -> bool:
    return any(key in read_manifest(store, g)[0].rules for g in _generations(store)[1])


def _apply(
    store: Store,
    rules: list[Rule],
    removed: list[str],
    today: date,
    *,
    wanted: dict[str, Rule] | None = None,
) -> tuple[str, Manifest] | None:
    """Re-resolve `rules` and drop `removed` in the current and held generations; with `wanted`
    (the whole rule set), also whatever a generation's manifest holds otherwise.

    Returns the current generation's manifest as the edit left it (None: no generation yet, or
    nothing to apply), so the answer needs no second read of the pointer and manifest.
    """
    if not rules and not removed and wanted is None:
        return None
    current, generations = _generations(store)
    served = None
    for generation in generations:
        todo, gone = list(rules), list(removed)
        manifest, etag = read_manifest(store, generation)
        if generation == current:
            served = generation, manifest
        if wanted is not None:
            entries = manifest.rules
            named = {r.key for r in todo}
            todo += [
                r
                for k, r in wanted.items()
                if k not in named and (k not in entries or entries[k].rule != r)
            ]
            gone += [k for k in entries if k not in wanted and k not in gone]
        if not (todo or gone):
            continue
        keys = {r.key for r in todo} | set(gone)
        before = rule_targets(store, generation, keys, manifest) if generation == current else None
        snapshot = snapshot_of(store, generation, etag)
        applied = apply_rules(
            store, generation, snapshot, todo, today, removed=gone, read=(manifest, etag)
        )
        keep_snapshot(store, generation, snapshot, etag, applied)
        if before is not None:
            served = generation, applied.manifest
            _record_edit(store, generation, before, applied)
    return served


def _record_edit(
    store: Store, generation: str, before: Mapping[str, RuleTargets], applied: AppliedRules
) -> None:
    # Best effort, as a publish's record: the edit already serves, so a failure is logged only.
    cause = Cause(kind="rule", id=uuid.uuid4().hex[:12])
    # The edited rules' targets as written (a dropped rule has none), without reading them back.
    rules = applied.manifest.rules
    after = {key: RuleTargets(rules[key].software, found) for key, found in applied.targets.items()}
    try:
        record_changes(
            store, before, after, generation=generation, cause=cause, at=datetime.now(UTC)
        )
    except StoreError as error:
        log.warning("rule edit %s: could not record the change log: %s", cause.id, error)


def _current(store: Store) -> tuple[Manifest | None, Catalog | None]:
    pointer = store.current()
    if pointer is None:
        return None, None
    try:
        manifest = read_manifest(store, pointer.generation)[0]
    except StoreError:
        return None, None
    return _served(store, (pointer.generation, manifest))


def _served(
    store: Store, served: tuple[str, Manifest] | None
) -> tuple[Manifest | None, Catalog | None]:
    """The manifest and catalogue an answer shows (neither where storage fails: the answer
    still stands without its targets and warnings)."""
    if served is None:
        return None, None
    generation, manifest = served
    try:
        return manifest, read_catalog(store, generation)
    except StoreError:
        return None, None


def _view(
    rule: Rule,
    manifest: Manifest | None,
    catalog: Catalog | None,
    references: list[str] | None = None,
) -> RuleView:
    """The rule with its targets and warnings; `references`: what its ids' check said (only
    a write checks them: it reads the snapshots anyway, a GET does not)."""
    entry = manifest.rules.get(rule.key) if manifest else None
    return RuleView(
        rule=rule,
        targets=entry.targets if entry else None,
        warnings=(rule_warnings(rule, catalog) if catalog else [])
        + scope_warnings(rule)
        + (references or []),
    )


def _validate(document: dict[str, Any], *, patched: bool = False) -> Rule:
    try:
        # Strict: the JSON types the schema states ("5" is not an integer).
        return Rule.model_validate(document, strict=True, context=CALLER)
    except ValidationError as error:
        if patched and all(not e["loc"] for e in error.errors()):
            # Every member the patch gave is valid, but the rule they make is not (it names no
            # contract type nor item): RFC 5789's 422, not a malformed request.
            detail = "the rule this patch makes is not valid: " + _describe(error)
            raise ApiError(problem(422, "invalid-result", detail)) from None
        raise ApiError(problem(400, "bad-rule", _describe(error))) from None


def _describe(error: ValidationError, most: int = 5) -> str:
    """The first few reasons: a 2,000-rule body can hold thousands."""
    text = describe_error(error)
    parts = text.split("; ")
    return "; ".join(parts[:most]) + (
        f"; and {len(parts) - most} more" if len(parts) > most else ""
    )


def _unknown(software: str, rules: dict[str, Rule]) -> ApiError:
    return ApiError(
        problem(
            404,
            "unknown-software",
            f"no rule for software {software!r}",
            known=sorted(r.software for r in rules.values()),
        )
    )
