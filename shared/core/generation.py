"""What a snapshot generation holds: its partitions' names, its manifest, how records are packed.

`shared.store.generations` lays these out as Table entities and reads them back; the layout itself
is described there. Everything here is pure: names, the manifest's models and the size-bounded
packing of JSON texts into documents.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from shared.core.installed import InventoryState
from shared.core.rules import Rule
from shared.core.targets import Snapshot, Target, TargetCounts, count_targets
from shared.records.halo import Client, Contract, RecurringInvoice, Site
from shared.records.parsing import Cause, Reject

CLIENTS = "clients"
ITEMS = "items"
META = "meta"
MANIFEST = "manifest"
CATALOG = "catalog"
MATCHES = "immy_matches"
# Clients per matches bucket: about 120 characters each, so a bucket is one entity.
MATCH_BUCKET = 1000
IMMY_TENANTS = "immy_tenants"
IMMY_COMPUTERS = "immy_computers"
# Names several ImmyBot tenants share, and the clients named so (shared.store.matches).
IMMY_NAMES = "immy_names"


def resolution_version(rule: Rule, snapshot: Snapshot, today: date) -> str:
    """A digest of what a rule's targets depend on besides the records: the rule, the mapping
    and the day they were resolved on (dates decide coverage, so a re-resolve on a later day
    must go to a fresh partition, never over rows the new answer no longer fills)."""
    material = f"{rule.model_dump_json()}|{snapshot.mapping_digest}|{today.isoformat()}"
    return hashlib.sha256(material.encode()).hexdigest()[:12]


def target_partition(rule: Rule, version: str) -> str:
    """The partition holding one version of one rule's resolved targets."""
    return f"targets|{rule.key}|{version}"


def unmapped_partition(targets_partition: str) -> str:
    """The unmapped-clients partition that goes with a targets partition."""
    return "unmapped|" + targets_partition.removeprefix("targets|")


class RuleEntry(BaseModel):
    """Where a rule's targets are in a generation, their totals, and who could not be mapped."""

    software: str
    partition: str
    counts: TargetCounts
    rule: Rule
    version: str
    resolved_on: date
    unmapped_count: int = 0

    @property
    def targets(self) -> int:
        """How many targets the rule has."""
        return self.counts.targets

    @property
    def unmapped_partition(self) -> str:
        """The partition holding the rule's covered clients without an ImmyBot tenant."""
        return unmapped_partition(self.partition)


class ImmyState(BaseModel):
    """What the generation holds of ImmyBot."""

    configured: bool = False
    tenants: int = 0
    computers: int = 0
    note: str | None = None
    halo_link: str | None = Field(
        default=None, description="Which ImmyBot HaloPSA provider link mapped clients, or why none."
    )
    inventory: InventoryState | None = Field(
        default=None,
        description="What the run read of ImmyBot's inventory (the searches behind installed); "
        "null: not read (ImmyBot off, or a generation older than the inventory read).",
    )


class Manifest(BaseModel):
    """What a generation holds."""

    generation: str
    synced_at: datetime
    today: date
    read: dict[str, int] = Field(default_factory=dict)
    rules: dict[str, RuleEntry] = Field(default_factory=dict)
    immybot: ImmyState = Field(default_factory=ImmyState)


def rule_entry(rule: Rule, found: Sequence[Target], today: date, snapshot: Snapshot) -> RuleEntry:
    """The manifest entry for `rule` resolved to `found` on `today` in `snapshot`."""
    version = resolution_version(rule, snapshot, today)
    return RuleEntry(
        software=rule.software,
        partition=target_partition(rule, version),
        counts=count_targets(found),
        rule=rule,
        version=version,
        resolved_on=today,
        unmapped_count=sum(t.immy_tenant_id is None for t in found) if snapshot.immybot else 0,
    )


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """One client with its sites, contracts and recurring invoices, as of a generation."""

    client: Client
    sites: list[Site]
    contracts: list[Contract]
    invoices: list[RecurringInvoice]


def client_record(documents: Sequence[Mapping[str, Any]]) -> ClientRecord:
    """A client's record from its documents (parts) in order: the first carries the client."""
    return ClientRecord(
        client=Client.model_validate(documents[0]["client"]),
        sites=[Site.model_validate(x) for d in documents for x in d.get("sites", ())],
        contracts=[Contract.model_validate(x) for d in documents for x in d.get("contracts", ())],
        invoices=[
            RecurringInvoice.model_validate(x) for d in documents for x in d.get("invoices", ())
        ],
    )


def _too_large(kind: str, record_id: str, text: str) -> Reject:
    return Reject(kind, record_id, f"{len(text)} characters, too large to store", Cause.TOO_LARGE)


def pack_client(
    records: Iterable[tuple[str, BaseModel]], head: int, limit: int, too_large: list[Reject]
) -> Iterator[dict[str, list[str]]]:
    """A client's records as JSON texts grouped by kind, in parts of at most `limit` characters
    each counting the client's own `head`; a record too large for any part goes to `too_large`."""
    groups: dict[str, list[str]] = defaultdict(list)
    size = head
    for kind, model in records:
        text = model.model_dump_json()
        if len(text) + head > limit:
            too_large.append(_too_large(kind, str(getattr(model, "id", "?")), text))
            continue
        if groups and size + len(text) + 1 > limit:
            yield groups
            groups, size = defaultdict(list), head
        groups[kind].append(text)
        size += len(text) + 1
    yield groups  # the first part always exists: it carries the client


def pack_texts(
    texts: Iterable[str], limit: int, too_large: list[Reject], kind: str
) -> list[list[str]]:
    """JSON texts in order, in chunks whose JSON array is at most about `limit` characters; a text
    over `limit` alone goes to `too_large`."""
    chunks: list[list[str]] = []
    chunk: list[str] = []
    size = 0
    for text in texts:
        if len(text) > limit:
            too_large.append(_too_large(kind, "?", text))
            continue
        if chunk and size + len(text) + 1 > limit:
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(text)
        size += len(text) + 1
    if chunk:
        chunks.append(chunk)
    return chunks
