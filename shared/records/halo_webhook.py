"""Pydantic models of what a HaloPSA outbound webhook POSTs (Configuration > Integrations > Webhooks).

What is known, and from where (read 2026-12-06; tests/fixtures/README.md keeps the same list):
- Halo's guide "Webhook Integration" (https://halocrm.io/guides/article?kbid=838, the same article
  at https://haloitsm.com/guides/article/?kbid=838): every payload type carries "an ID,
  notification ID, escmsg ID, event name, webhook ID, object ID, and timestamp"; the payload is
  a *small object with key fields*, a *full object with linked objects*, *event information only*
  (v2.214.1+: the object id and event name) or a custom payload; batching (v2.164+) groups
  occurrences of an event, of an event type or of any event into one delivery.
- A real "ticket status changed" delivery seen on a live tenant, trimmed by its author
  (homotechsual/dotMARC @ 5a6a5050f7772e06cfca145dd47591f51e2ceec3,
  test/DotMarc.Tests/Notifications/HaloWebhookEndpointTests.cs): top-level `id` (a GUID),
  `webhook_id` (GUID), `notification_id` (int), `escmsg_id` (GUID), `event` ("ticket status
  changed"), `message`, `object_id` (the ticket's id), `agent_id`, `timestamp` (Z, 7 fractional
  digits), and the record itself under `ticket` (with `client_id`).
- Halo's OpenAPI document (../shared/halo-openapi, `Webhook`): authentication_type, batch and
  payload settings of a webhook; it has no schema for what a webhook sends.

Not found in any public source: a delivery for a client, contract, invoice or asset event, so
the key the record sits under for those (`client`, `contract`, `invoice`, `asset` are assumed
after `ticket`), and the shape of a batched delivery (a JSON array of single payloads is
assumed). So everything is lenient: unknown keys are ignored, ids arrive as ints, decimals or
strings like everywhere else in HaloPSA (shared.records.ids), an id that is not a number is
treated as absent (never a reject: the event only says "look again"), and the records a
payload carries are looked for under every key one of them may use.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

from shared.records.ids import whole_number

# "Not set" in a HaloPSA reference (shared.records.halo): a client_id of -1, 0 or -2 names nobody.
_UNSET = frozenset({-2, -1, 0})
# Where a payload may put its record, by the record type each key names. `ticket` is seen in a
# real delivery; the others are assumptions (see the module docstring), and `object` is a
# generic name some integrations use.
RECORD_KEYS: dict[str, str] = {
    "ticket": "ticket",
    "faults": "ticket",
    "client": "client",
    "area": "client",
    "customer": "client",
    "contract": "contract",
    "clientcontract": "contract",
    "invoice": "invoice",
    "recurringinvoice": "invoice",
    "recurring_invoice": "invoice",
    "asset": "asset",
    "device": "asset",
    "object": "",
}


def _lenient_id(value: Any) -> int | None:
    # An id that is not a whole number is as good as absent here: the event is only a hint.
    return whole_number(value)


def _reference(value: Any) -> int | None:
    number = whole_number(value)
    return None if number is None or number in _UNSET else number


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None or isinstance(value, dict | list) else str(value)


LenientId = Annotated[int | None, BeforeValidator(_lenient_id)]
LenientReference = Annotated[int | None, BeforeValidator(_reference)]
LenientText = Annotated[str, BeforeValidator(_text)]


class WebhookRecord(BaseModel):
    """The record a payload carries (small or full object). Relied on: id, client_id."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: LenientId = None
    client_id: LenientReference = None


def _record(value: Any) -> Any:
    # A record that is not an object (a full payload's linked list, a custom payload's string) is
    # no record at all here, rather than a reason to refuse the event.
    return value if isinstance(value, dict) else None


OptionalRecord = Annotated[WebhookRecord | None, BeforeValidator(_record)]


class WebhookEvent(BaseModel):
    """One event of a delivery. Relied on: event (its name), object_id, client_id where a custom
    payload puts it at the top, and the record under one of RECORD_KEYS; the rest (id,
    webhook_id, notification_id, escmsg_id, timestamp) is kept for logs and counts only."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: LenientText = ""
    webhook_id: LenientText = ""
    notification_id: LenientId = None
    event: LenientText = ""
    object_id: LenientId = None
    client_id: LenientReference = None
    timestamp: LenientText = ""
    ticket: OptionalRecord = None
    faults: OptionalRecord = None
    client: OptionalRecord = None
    area: OptionalRecord = None
    customer: OptionalRecord = None
    contract: OptionalRecord = None
    clientcontract: OptionalRecord = None
    invoice: OptionalRecord = None
    recurringinvoice: OptionalRecord = None
    recurring_invoice: OptionalRecord = None
    asset: OptionalRecord = None
    device: OptionalRecord = None
    object: OptionalRecord = None

    def records(self) -> Iterator[tuple[str, WebhookRecord]]:
        """(record type, record) for every record the payload carries; the type is "" for a
        record under a generic key."""
        for key, kind in RECORD_KEYS.items():
            record = getattr(self, key)
            if isinstance(record, WebhookRecord):
                yield kind, record
