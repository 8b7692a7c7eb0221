"""HaloPSA client -> ImmyBot tenant: an explicit mapping first, then ImmyBot's own HaloPSA
integration links, then the normalised name.

Normalising folds case, width and punctuation and drops legal suffixes (Ltd, LLC, Inc, GmbH, ...),
so "Contoso Ltd" meets "Contoso Limited". Two tenants with the same normalised name are ambiguous
and a client without a match is unmapped: both are reported, never guessed.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from shared.core.text import CONTROLS, RecordId, matches
from shared.records.halo import Client
from shared.records.immybot import ImmyTenant

# A free-text note: anything but control characters (a line break included), or nothing.
NOTE_PATTERN = f"^[^{CONTROLS}]*$"


def checked_note(value: Any) -> Any:
    """The note as the schema states it: no control characters."""
    if isinstance(value, str) and not matches(NOTE_PATTERN, value):
        raise ValueError("may not contain control characters")
    return value


LEGAL_SUFFIXES = frozenset(
    {
        "ltd", "limited", "llc", "inc", "incorporated", "corp", "corporation", "co", "company",
        "plc", "llp", "lp", "gmbh", "ag", "bv", "nv", "sa", "sas", "srl", "pty", "pte", "oy", "ab",
        "as", "aps", "kg", "the",
    }
)  # fmt: skip
_WORDS = re.compile(r"[^\w]+")


def normalise_name(name: str) -> str:
    """A company name reduced to the words that identify it."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().casefold()
    words = [w for w in _WORDS.split(folded.replace("&", " and ")) if w]
    while words and words[-1] in LEGAL_SUFFIXES:
        words.pop()
    while words and words[0] == "the":
        words.pop(0)
    return " ".join(words)


class MatchKind(StrEnum):
    """How a client was (or was not) matched to a tenant."""

    EXPLICIT = "explicit"
    IMMYBOT_LINK = "immybot_link"
    NAME = "name"
    AMBIGUOUS = "ambiguous"
    UNMAPPED = "unmapped"
    NOT_CONFIGURED = "not_configured"


class TenantMatch(BaseModel):
    """One client's mapping outcome."""

    model_config = ConfigDict(frozen=True)

    client_id: int
    kind: MatchKind
    tenant_id: int | None = None
    tenant_name: str | None = None
    candidates: list[int] = Field(
        default_factory=list, description="Tenants an ambiguous name matched."
    )
    detail: str = ""


class ExplicitMapping(BaseModel):
    """An admin's decision: this HaloPSA client is that ImmyBot tenant."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Both ids are 32-bit (Table Storage stores larger ints only when told to, as Int64).
    halo_client_id: RecordId
    immy_tenant_id: RecordId
    note: Annotated[
        str,
        StringConstraints(max_length=500),
        BeforeValidator(checked_note),
        WithJsonSchema({"type": "string", "maxLength": 500, "pattern": NOTE_PATTERN}),
    ] = ""


def map_clients(
    clients: Iterable[Client],
    tenants: Iterable[ImmyTenant],
    explicit: Mapping[int, ExplicitMapping],
    links: Mapping[int, int] | None = None,
) -> dict[int, TenantMatch]:
    """Match every client to a tenant: explicit mappings first (which may name the MSP's own
    tenant), then ImmyBot's HaloPSA links (`links`: client id -> tenant id), then by name."""
    every = list(tenants)
    by_id = {t.id: t for t in every}
    links = links or {}
    by_name: dict[str, list[ImmyTenant]] = defaultdict(list)
    for tenant in every:
        if not tenant.is_msp and tenant.active:
            by_name[normalise_name(tenant.name)].append(tenant)
    clients = list(clients)
    client_names: dict[str, list[str]] = defaultdict(list)
    for client in clients:
        client_names[normalise_name(client.name)].append(_exact(client.name))
    matches: dict[int, TenantMatch] = {}
    for client in clients:
        chosen = explicit.get(client.id)
        linked = by_id.get(links[client.id]) if client.id in links else None
        if chosen is not None:
            matches[client.id] = _explicit_match(client.id, chosen, by_id)
        elif linked is not None:
            matches[client.id] = TenantMatch(
                client_id=client.id,
                kind=MatchKind.IMMYBOT_LINK,
                tenant_id=linked.id,
                tenant_name=linked.name,
            )
        else:
            matches[client.id] = _name_match(client, by_name, client_names)
    return matches


def _explicit_match(
    client_id: int, chosen: ExplicitMapping, by_id: Mapping[int, ImmyTenant]
) -> TenantMatch:
    mapped = by_id.get(chosen.immy_tenant_id)
    if mapped is None:
        return TenantMatch(
            client_id=client_id,
            kind=MatchKind.UNMAPPED,
            detail=f"mapped to ImmyBot tenant {chosen.immy_tenant_id}, which does not exist",
        )
    return TenantMatch(
        client_id=client_id, kind=MatchKind.EXPLICIT, tenant_id=mapped.id, tenant_name=mapped.name
    )


def _name_match(
    client: Client,
    by_name: Mapping[str, list[ImmyTenant]],
    client_names: Mapping[str, list[str]],
) -> TenantMatch:
    key = normalise_name(client.name)
    found = by_name.get(key, []) if key else []
    if len(found) > 1 and _paired_exactly(found, client_names[key]):
        # "Blue Dental Ltd" and "Blue Dental LLC" are two customers in both systems: the
        # letter-for-letter names pair them up. Any unpaired tenant leaves it ambiguous.
        found = [t for t in found if _exact(t.name) == _exact(client.name)]
    if len(found) == 1:
        return TenantMatch(
            client_id=client.id,
            kind=MatchKind.NAME,
            tenant_id=found[0].id,
            tenant_name=found[0].name,
        )
    if found:
        return TenantMatch(
            client_id=client.id,
            kind=MatchKind.AMBIGUOUS,
            candidates=sorted(t.id for t in found),
            detail=f"{len(found)} ImmyBot tenants are named like this client: map it explicitly",
        )
    return TenantMatch(
        client_id=client.id, kind=MatchKind.UNMAPPED, detail="no ImmyBot tenant has this name"
    )


def links_of(matches: Iterable[TenantMatch]) -> dict[int, int]:
    """The ImmyBot-link matches among `matches` as client id -> tenant id (to map again with)."""
    return {
        m.client_id: m.tenant_id
        for m in matches
        if m.kind is MatchKind.IMMYBOT_LINK and m.tenant_id is not None
    }


def _paired_exactly(tenants: list[ImmyTenant], client_names: list[str]) -> bool:
    tenant_names = [_exact(t.name) for t in tenants]
    unique = len(set(tenant_names)) == len(tenant_names) and len(set(client_names)) == len(
        client_names
    )
    return unique and sorted(tenant_names) == sorted(client_names)


def _exact(name: str) -> str:
    return " ".join(name.casefold().split())
