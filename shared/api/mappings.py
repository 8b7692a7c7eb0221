"""Explicit HaloPSA client -> ImmyBot tenant mappings: list, set, remove.

A change re-maps the current (and any held) generation at once and re-resolves every rule into
fresh partitions, switched to by the usual manifest write, so targets name the new tenant without
waiting for the next sync.
"""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.api.current import keep_snapshot, snapshot_of
from shared.api.names import NULL_NAME, Names, current_names
from shared.api.params import record_id
from shared.api.problems import ApiError, json_object, problem
from shared.api.references import checked_mapping
from shared.core.mapping import ExplicitMapping, MatchKind, TenantMatch, links_of, map_clients
from shared.records.parsing import describe_error
from shared.store.generations import apply_rules, read_manifest
from shared.store.matches import write_matches
from shared.store.repository import Store


class NamedMapping(BaseModel):
    """An explicit mapping, with the names the current snapshot holds for both ids."""

    model_config = ConfigDict(frozen=True)

    halo_client_id: int
    halo_client_name: str | None = Field(description=NULL_NAME)
    immy_tenant_id: int
    immy_tenant_name: str | None = Field(description=NULL_NAME)
    note: str


class MappingOutcome(BaseModel):
    """How one client of the current snapshot maps, with names beside the ids."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    client_name: str | None = Field(description=NULL_NAME)
    kind: MatchKind
    tenant_id: int | None
    tenant_name: str | None
    candidates: list[int] = Field(description="Tenants an ambiguous name matched.")
    candidate_names: dict[int, str | None] = Field(
        description="Each candidate tenant's name (null when the snapshot does not hold it)."
    )
    detail: str


class MappingSaved(NamedMapping):
    """`PUT /api/mappings/{halo_client_id}`: the mapping as stored, with both names, and what
    could not be confirmed about it."""

    warnings: list[str] = Field(
        default_factory=list,
        description=(
            "Ids accepted unconfirmed: perhaps newer than the snapshot (the next sync tells), or "
            "not checked (no sync yet, or no ImmyBot data in it). An id that cannot exist is a "
            "409 instead."
        ),
    )


class MappingsView(BaseModel):
    """`GET /api/mappings`: the explicit mappings and, per client, the current outcome."""

    model_config = ConfigDict(frozen=True)

    immybot_configured: bool
    generation: str | None
    explicit: list[NamedMapping]
    outcomes: list[MappingOutcome]


def explicit_mappings(store: Store) -> dict[int, ExplicitMapping]:
    """The stored explicit mappings by HaloPSA client id."""
    return {row["halo_client_id"]: ExplicitMapping(**row) for row in store.mapping_rows()}


def list_mappings(store: Store) -> MappingsView:
    """Explicit mappings plus how every client of the current generation maps, with names."""
    pointer = store.current()
    explicit = sorted(explicit_mappings(store).values(), key=lambda m: m.halo_client_id)
    if pointer is None:
        return MappingsView(
            immybot_configured=False,
            generation=None,
            explicit=[_named(m, Names()) for m in explicit],
            outcomes=[],
        )
    snapshot = snapshot_of(store, pointer.generation)
    names = Names.of(snapshot)
    return MappingsView(
        immybot_configured=snapshot.immybot,
        generation=pointer.generation,
        explicit=[_named(m, names) for m in explicit],
        outcomes=[
            _outcome(m, names) for m in sorted(snapshot.matches.values(), key=lambda m: m.client_id)
        ],
    )


def _named(mapping: ExplicitMapping, names: Names) -> NamedMapping:
    return NamedMapping(
        halo_client_id=mapping.halo_client_id,
        halo_client_name=names.client(mapping.halo_client_id),
        immy_tenant_id=mapping.immy_tenant_id,
        immy_tenant_name=names.tenant(mapping.immy_tenant_id),
        note=mapping.note,
    )


def _outcome(match: TenantMatch, names: Names) -> MappingOutcome:
    return MappingOutcome(
        client_id=match.client_id,
        client_name=names.client(match.client_id),
        kind=match.kind,
        tenant_id=match.tenant_id,
        tenant_name=match.tenant_name,
        candidates=match.candidates,
        candidate_names=names.tenant_names(match.candidates),
        detail=match.detail,
    )


def put_mapping(
    store: Store, halo_client_id: str, body: bytes, today: date
) -> tuple[MappingSaved, bool]:
    """Map one client to a tenant from a JSON body `{"immy_tenant_id": N, "note": "..."}`; the
    answer names both sides; a 409 when the client or the tenant cannot exist
    (shared.api.references)."""
    client_id = _client_id(halo_client_id)
    document = json_object(body, 16 * 1024)
    document.setdefault("halo_client_id", client_id)
    try:
        # Strict: the JSON types the schema states ("5" is not an integer).
        mapping = ExplicitMapping.model_validate(document, strict=True)
    except ValidationError as error:
        raise ApiError(problem(400, "bad-mapping", describe_error(error))) from None
    if mapping.halo_client_id != client_id:
        # 409: a well-formed body about another client than the URL's.
        raise ApiError(
            problem(409, "client-mismatch", "the body names another HaloPSA client than the URL")
        )
    found = checked_mapping(store, client_id, mapping.immy_tenant_id)
    created = client_id not in explicit_mappings(store)
    # Read before the remap, which reads the same snapshot (kept by snapshot_of) and then
    # rewrites the manifest: after it, names would cost a second read of the whole snapshot.
    names = current_names(store)
    store.put_mapping_row(client_id, mapping.immy_tenant_id, mapping.note)
    _remap(store, today)
    return MappingSaved(**_named(mapping, names).model_dump(), warnings=found), created


def delete_mapping(store: Store, halo_client_id: str, today: date) -> None:
    """Remove one client's explicit mapping (it maps by name again); 404 if it had none."""
    if not store.delete_mapping_row(_client_id(halo_client_id)):
        raise ApiError(
            problem(404, "unknown-mapping", f"client {halo_client_id} has no explicit mapping")
        )
    _remap(store, today)


def _client_id(text: str) -> int:
    return record_id(text, "halo_client_id", "bad-mapping")


def _remap(store: Store, today: date) -> None:
    explicit = explicit_mappings(store)
    pointer, held = store.current(), store.held()
    for generation in {g for g in (pointer and pointer.generation, held and held.generation) if g}:
        manifest, etag = read_manifest(store, generation)
        if not manifest.immybot.configured:
            continue
        snapshot = snapshot_of(store, generation, etag)
        # ImmyBot's own links were read by the sync; keep them (they are in the stored mapping).
        links = links_of(snapshot.matches.values())
        matches = map_clients(snapshot.clients.values(), snapshot.tenants.values(), explicit, links)
        remapped = snapshot.with_immybot(snapshot.tenants.values(), matches)
        write_matches(store, generation, matches.values())
        rules = [entry.rule for entry in manifest.rules.values()]
        applied = apply_rules(store, generation, remapped, rules, today, read=(manifest, etag))
        keep_snapshot(store, generation, remapped, etag, applied)  # the records as stored now
