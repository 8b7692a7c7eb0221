"""HaloPSA client -> ImmyBot tenant: an explicit mapping first, then ImmyBot's own HaloPSA
integration links, then the Microsoft Entra tenant both products know, then the normalised name.

The Entra tenant is an exact key where both sides carry it (a HaloPSA client's `azure_tenants`,
an ImmyBot tenant's `azureTenantLink`; shared.records says where each is documented): it tells
two tenants named alike apart. One Entra tenant may be linked to several ImmyBot tenants (ImmyBot
splits a tenant by domain), so a client whose Entra tenants lead to more than one ImmyBot tenant
is ambiguous, and is not then matched by name: the exact key says two, a name would only guess.

Normalising folds case, width and punctuation and drops legal suffixes (Ltd, LLC, Inc, GmbH, ...),
so "Contoso Ltd" meets "Contoso Limited". Two tenants with the same normalised name are ambiguous
and a client without a match is unmapped: both are reported, never guessed. Only active customer
tenants are matched by Entra tenant or name; an explicit mapping may name any tenant, the MSP's
own included.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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
    ENTRA_TENANT = "entra_tenant"
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
        default_factory=list,
        description="Tenants an ambiguous client matched (by Entra tenant or by name).",
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


@dataclass(frozen=True, slots=True)
class _Tenants:
    """The tenants indexed the ways clients are matched to them."""

    by_id: Mapping[int, ImmyTenant]
    by_entra: Mapping[str, list[ImmyTenant]]
    by_name: Mapping[str, list[ImmyTenant]]
    client_names: Mapping[str, list[str]]

    @classmethod
    def of(cls, tenants: Iterable[ImmyTenant], clients: Iterable[Client]) -> _Tenants:
        every = list(tenants)
        by_entra: dict[str, list[ImmyTenant]] = defaultdict(list)
        by_name: dict[str, list[ImmyTenant]] = defaultdict(list)
        for tenant in every:
            if tenant.is_msp or not tenant.active:
                continue  # never a customer's by any key but an explicit mapping
            by_name[normalise_name(tenant.name)].append(tenant)
            if tenant.entra_tenant_id is not None:
                by_entra[tenant.entra_tenant_id].append(tenant)
        client_names: dict[str, list[str]] = defaultdict(list)
        for client in clients:
            client_names[normalise_name(client.name)].append(_exact(client.name))
        return cls({t.id: t for t in every}, by_entra, by_name, client_names)


def map_clients(
    clients: Iterable[Client],
    tenants: Iterable[ImmyTenant],
    explicit: Mapping[int, ExplicitMapping],
    links: Mapping[int, int] | None = None,
) -> dict[int, TenantMatch]:
    """Match every client to a tenant: explicit mappings first (which may name the MSP's own
    tenant), then ImmyBot's HaloPSA links (`links`: client id -> tenant id), then the Microsoft
    Entra tenant, then by name."""
    clients = list(clients)
    index = _Tenants.of(tenants, clients)
    links = links or {}
    return {client.id: _match(client, index, explicit, links) for client in clients}


def _match(
    client: Client,
    index: _Tenants,
    explicit: Mapping[int, ExplicitMapping],
    links: Mapping[int, int],
) -> TenantMatch:
    chosen = explicit.get(client.id)
    if chosen is not None:
        return _explicit_match(client.id, chosen, index.by_id)
    linked = index.by_id.get(links[client.id]) if client.id in links else None
    if linked is not None:
        return TenantMatch(
            client_id=client.id,
            kind=MatchKind.IMMYBOT_LINK,
            tenant_id=linked.id,
            tenant_name=linked.name,
        )
    return _entra_match(client, index.by_entra) or _name_match(
        client, index.by_name, index.client_names
    )


def _entra_match(client: Client, by_entra: Mapping[str, list[ImmyTenant]]) -> TenantMatch | None:
    """The tenant the client's Entra tenants lead to; ambiguous when they lead to several; None
    when they lead nowhere (the name decides then)."""
    keys = [key for key in client.entra_tenant_ids if by_entra.get(key)]
    found = {tenant.id: tenant for key in keys for tenant in by_entra[key]}
    named = ", ".join(keys)
    if len(found) == 1:
        (tenant,) = found.values()
        return TenantMatch(
            client_id=client.id,
            kind=MatchKind.ENTRA_TENANT,
            tenant_id=tenant.id,
            tenant_name=tenant.name,
            detail=f"Microsoft Entra tenant {named}",
        )
    if found:
        return TenantMatch(
            client_id=client.id,
            kind=MatchKind.AMBIGUOUS,
            candidates=sorted(found),
            detail=(
                f"{len(found)} ImmyBot tenants are linked to this client's Microsoft Entra "
                f"tenant {named}: map it explicitly"
            ),
        )
    return None


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


def shared_names(tenants: Iterable[ImmyTenant]) -> set[str]:
    """The names (normalised) two or more customer tenants share: which client maps to which of
    them depends on every client's name (`_paired_exactly`), not on one client's alone."""
    counts: dict[str, int] = defaultdict(int)
    for tenant in tenants:
        if not tenant.is_msp and tenant.active:
            counts[normalise_name(tenant.name)] += 1
    return {key for key, n in counts.items() if n > 1 and key}


def clients_named(keys: set[str], clients: Iterable[Client]) -> dict[str, list[tuple[int, str]]]:
    """For each of `keys` (normalised names), the clients named so: (id, name), by id."""
    found: dict[str, list[tuple[int, str]]] = {key: [] for key in keys}
    for client in clients:
        key = normalise_name(client.name)
        if key in found:
            found[key].append((client.id, client.name))
    return {key: sorted(named) for key, named in found.items() if named}


def renamed(
    names: Mapping[str, list[tuple[int, str]]], keys: set[str], clients: Iterable[Client]
) -> dict[str, list[tuple[int, str]]]:
    """`names` (shared name -> the clients named so) with `clients` listed under their names now
    (among the shared `keys`) and nowhere else."""
    found = list(clients)
    ids = {c.id for c in found}
    out = {key: [x for x in named if x[0] not in ids] for key, named in names.items()}
    for client in found:
        key = normalise_name(client.name)
        if key in keys:
            out.setdefault(key, []).append((client.id, client.name))
    return {key: sorted(named) for key, named in out.items() if named}
