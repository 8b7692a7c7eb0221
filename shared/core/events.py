"""What a HaloPSA webhook delivery says: which clients (or contracts, invoices) may have changed.

An event is only a hint ("look at this client again"): the refresh re-reads the client through
REST, so nothing here decides coverage. From each event the kind is read (client, contract,
invoice, asset, ticket or unknown) and the ids it carries; events of the billing kinds become
one queue message per client (or, when a contract or invoice event names no client, per record,
resolved against the current snapshot by the refresh). Asset and ticket events change no
billing and are counted as ignored; unknown kinds are counted, with their names, and ignored.
Pure: no I/O, no clock (the caller passes the time of receipt).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.records.halo_webhook import WebhookEvent

# The Azure Storage queue the receiver puts one message per client on, and where the refresh puts
# a message it gives up on, with the reason (the host's own poison queue for this one).
EVENTS_QUEUE = "halo-events"
EVENTS_POISON_QUEUE = "halo-events-poison"
# Bounds of one delivery (the receiver answers 413/400 past them).
MAX_EVENTS = 1_000
MAX_DEPTH = 64
# Unknown event names kept for the status, each cut to this many characters.
MAX_UNKNOWN_NAMES = 10
MAX_NAME = 80


class EventKind(StrEnum):
    """What an event is about."""

    CLIENT = "client"
    CONTRACT = "contract"
    INVOICE = "invoice"
    ASSET = "asset"
    TICKET = "ticket"
    UNKNOWN = "unknown"


# The kinds whose records decide coverage: only these are refreshed.
BILLING_KINDS = frozenset({EventKind.CLIENT, EventKind.CONTRACT, EventKind.INVOICE})
# Words of an event's name, most specific first: "New Ticket Logged for Client" is a ticket,
# "Client Contract Updated" a contract, "Recurring Invoice Created" an invoice.
_NAME_WORDS: tuple[tuple[EventKind, tuple[str, ...]], ...] = (
    (EventKind.TICKET, ("ticket", "tickets", "action", "faults")),
    (EventKind.ASSET, ("asset", "assets", "device", "devices")),
    (EventKind.INVOICE, ("invoice", "invoices", "recurringinvoice")),
    (EventKind.CONTRACT, ("contract", "contracts", "clientcontract")),
    (EventKind.CLIENT, ("client", "clients", "customer", "customers", "area")),
)
_WORD = re.compile(r"[a-z]+")

Target = Literal["client", "contract", "invoice"]
INT32 = 2**31


class EventMessage(BaseModel):
    """One queue message: look again at one client (or the client of one contract or invoice)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    target: Target = Field(description="What `id` names: a client, or a contract or invoice.")
    id: int = Field(ge=-INT32, lt=INT32)
    kinds: list[EventKind] = Field(max_length=len(EventKind))
    events: int = Field(ge=1, description="How many events of the delivery pointed here.")
    received_at: datetime
    delivery: str = Field(max_length=64)

    @property
    def key(self) -> str:
        """`client|42`, `contract|17`, `invoice|-94`: what a refresh coalesces on."""
        return f"{self.target}|{self.id}"


@dataclass(slots=True)
class Extraction:
    """A delivery read: its messages and what was counted."""

    messages: list[EventMessage] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    unknown_names: list[str] = field(default_factory=list)


def event_kind(event: WebhookEvent) -> EventKind:
    """The kind of an event: by the key its record sits under, else by the words of its name."""
    kinds = {kind for kind, _ in event.records() if kind}
    for kind, _ in _NAME_WORDS:
        if kind in kinds:
            return kind
    words = set(_WORD.findall(event.event.casefold()))
    for kind, names in _NAME_WORDS:
        if words.intersection(names):
            return kind
    return EventKind.UNKNOWN


def event_targets(event: WebhookEvent, kind: EventKind) -> set[tuple[Target, int]]:
    """What to look at again for one billing event: its clients, else its contract or invoice."""
    clients = {event.client_id} | {r.client_id for _, r in event.records()}
    if kind is EventKind.CLIENT:
        # A client event's object is the client itself.
        clients |= {event.object_id} | {r.id for k, r in event.records() if k in ("client", "")}
    found: set[tuple[Target, int]] = {("client", c) for c in _usable(clients) if c > 0}
    if found or kind is EventKind.CLIENT:
        return found
    own = {event.object_id} | {r.id for k, r in event.records() if k in (kind, "")}
    target: Target = "contract" if kind is EventKind.CONTRACT else "invoice"
    # Recurring invoice ids are negative; 0 names nothing.
    return {(target, i) for i in _usable(own) if i != 0}


def _usable(ids: Iterable[int | None]) -> set[int]:
    # HaloPSA ids are 32-bit; a larger number is no id of theirs (and no valid table key here).
    return {i for i in ids if i is not None and -INT32 <= i < INT32}


def nesting_depth(value: Any) -> int:
    """How deeply a decoded JSON value nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Iterable[Any] = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def extract(
    document: dict[str, Any] | list[Any], *, received_at: datetime, delivery: str
) -> Extraction:
    """One message per client (or unresolved contract or invoice) a delivery names, with counts:
    `events`, one per kind, `ignored` (asset and ticket events), `unusable` (an event that is
    not an object, or a billing event without any id), `messages`."""
    events = document if isinstance(document, list) else [document]
    out = Extraction()
    pointed: dict[tuple[Target, int], Counter[EventKind]] = {}
    for raw in events:
        out.counts["events"] += 1
        event = _event(raw)
        if event is None:
            out.counts["unusable"] += 1
            continue
        kind = event_kind(event)
        out.counts[str(kind)] += 1
        if kind is EventKind.UNKNOWN:
            _remember_name(out.unknown_names, event.event)
            continue
        if kind not in BILLING_KINDS:
            out.counts["ignored"] += 1
            continue
        targets = event_targets(event, kind)
        if not targets:
            out.counts["unusable"] += 1
        for target in targets:
            pointed.setdefault(target, Counter())[kind] += 1
    for (what, record_id), kinds in sorted(pointed.items()):
        out.messages.append(
            EventMessage(
                target=what,
                id=record_id,
                kinds=sorted(kinds),
                events=sum(kinds.values()),
                received_at=received_at,
                delivery=delivery,
            )
        )
    out.counts["messages"] = len(out.messages)
    return out


def _event(raw: Any) -> WebhookEvent | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        return WebhookEvent.model_validate(raw)
    except ValidationError:
        return None  # lenient fields make this rare: an object whose shape is beyond reading


def _remember_name(names: list[str], name: str) -> None:
    # Event names are HaloPSA configuration ("Client Note Added"), not customer data; bounded.
    shown = " ".join(name.split())[:MAX_NAME] or "(no event name)"
    if shown not in names and len(names) < MAX_UNKNOWN_NAMES:
        names.append(shown)


# -- what refreshes may spend ---------------------------------------------------------------------

# HaloPSA requests a refresh makes: a token, then per client its record, sites, contracts and
# recurring invoices (shared.halo.client_read); a contract or invoice named without its client
# costs one more, to ask HaloPSA whose it is.
TOKEN_REQUESTS, CLIENT_REQUESTS, RECORD_REQUESTS = 1, 4, 5
# The record types a full REST sync lists page by page (shared.sync.read), with the token.
LISTED = ("clients", "sites", "contracts", "invoices", "items")


def full_sync_requests(read: Mapping[str, int], page_size: int) -> int:
    """The HaloPSA requests a full REST sync of a generation's records makes at the least: a
    token, and every page of every list (one at least per list)."""
    return TOKEN_REQUESTS + sum(max(1, -(-read.get(k, 0) // page_size)) for k in LISTED)


def key_requests(key: str) -> int:
    """What refreshing one pending key costs (its client's reads, and resolving a record)."""
    return CLIENT_REQUESTS if key.startswith("client|") else RECORD_REQUESTS


def keys_within(keys: Iterable[str], room: int) -> list[str]:
    """The first `keys` whose refresh, with its token, costs at most `room` requests."""
    taken: list[str] = []
    spend = TOKEN_REQUESTS
    for key in keys:
        spend += key_requests(key)
        if spend > room:
            break
        taken.append(key)
    return taken
