"""A HaloPSA webhook delivery read into queue messages: one per client, counts for the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.core.events import (
    EventKind,
    EventMessage,
    event_kind,
    extract,
    nesting_depth,
)
from shared.records.halo_webhook import WebhookEvent

SAMPLES = Path(__file__).parents[1] / "fixtures" / "halo-webhooks"
AT = datetime(2026, 12, 6, 9, 30, tzinfo=UTC)


def sample(name: str):
    return json.loads((SAMPLES / name).read_text())


def read(document):
    return extract(document, received_at=AT, delivery="d1")


def keys(document) -> list[str]:
    return [m.key for m in read(document).messages]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ticket-status-changed.real.json", EventKind.TICKET),
        ("client-updated.json", EventKind.CLIENT),
        ("contract-updated.json", EventKind.CONTRACT),
        ("recurring-invoice-updated.json", EventKind.INVOICE),
        ("asset-updated.json", EventKind.ASSET),
        ("contract-event-information-only.json", EventKind.CONTRACT),
    ],
)
def test_every_sample_is_read_as_its_kind(name, kind):
    assert event_kind(WebhookEvent.model_validate(sample(name))) is kind


def test_the_real_ticket_delivery_is_read_and_ignored_as_no_billing_change():
    found = read(sample("ticket-status-changed.real.json"))
    assert found.messages == []
    assert found.counts["ticket"] == 1 and found.counts["ignored"] == 1


def test_a_client_event_names_its_client_whatever_the_id_spelling():
    assert keys(sample("client-updated.json")) == ["client|1"]


def test_a_contract_event_names_the_contracts_client():
    (message,) = read(sample("contract-updated.json")).messages
    assert (message.target, message.id, message.kinds) == ("client", 2, [EventKind.CONTRACT])


def test_a_recurring_invoice_event_names_its_client_from_a_decimal():
    assert keys(sample("recurring-invoice-updated.json")) == ["client|6"]


def test_an_event_information_only_payload_leaves_the_contract_to_resolve():
    (message,) = read(sample("contract-event-information-only.json")).messages
    assert message.key == "contract|9"


def test_a_negative_invoice_id_alone_is_kept_for_resolution():
    event = {"event": "Recurring Invoice Updated", "object_id": "-94.0"}
    assert keys(event) == ["invoice|-94"]


def test_a_batch_is_one_message_per_client_with_the_rest_counted():
    found = read(sample("batch.json"))
    (message,) = found.messages
    assert message.key == "client|1" and message.events == 2
    assert found.counts["events"] == 4
    assert found.counts["contract"] == 2
    assert found.counts["unknown"] == 1 and found.unknown_names == ["Quotation Approved"]
    assert found.counts["unusable"] == 1  # "not an event"
    assert found.counts["messages"] == 1


def test_the_same_delivery_twice_gives_the_same_messages():
    # A replay queues the same look-again: the refresh then finds nothing new.
    assert read(sample("batch.json")).messages == read(sample("batch.json")).messages


@pytest.mark.parametrize(
    "event",
    [
        {"event": "Contract Updated"},  # no id at all
        {"event": "Contract Updated", "object_id": "abc", "contract": {"id": True}},
        {"event": "Client Updated", "object_id": 0},
        {"event": "Client Updated", "client": {"id": -1}},
        {"event": "Contract Updated", "object_id": 2**40},
    ],
)
def test_a_billing_event_without_a_usable_id_is_counted_unusable(event):
    found = read(event)
    assert found.messages == [] and found.counts["unusable"] == 1


def test_fields_of_the_wrong_type_are_absent_not_errors():
    event = {
        "event": ["not", "text"],
        "object_id": {"x": 1},
        "contract": "a custom payload's text",
        "invoice": {"id": "-3", "client_id": [1]},
        "timestamp": 12,
    }
    (message,) = read(event).messages
    assert message.key == "invoice|-3"


def test_names_decide_the_kind_most_specific_first():
    def kind(name: str) -> EventKind:
        return event_kind(WebhookEvent.model_validate({"event": name}))

    assert kind("New Ticket Logged for Client") is EventKind.TICKET
    assert kind("Client Contract Updated") is EventKind.CONTRACT
    assert kind("Recurring Invoice Created") is EventKind.INVOICE
    assert kind("Customer Updated") is EventKind.CLIENT
    assert kind("Opportunity Won") is EventKind.UNKNOWN


def test_unknown_names_are_kept_bounded():
    events = [{"event": f"Unknown thing {n} " + "x" * 200} for n in range(30)]
    found = read(events)
    assert found.counts["unknown"] == 30
    assert len(found.unknown_names) == 10 and all(len(n) <= 80 for n in found.unknown_names)


def test_a_message_round_trips_as_json():
    (message,) = read(sample("contract-updated.json")).messages
    assert EventMessage.model_validate_json(message.model_dump_json()) == message


def test_nesting_depth_counts_without_recursion():
    deep: list = []
    for _ in range(10_000):
        deep = [deep]
    assert nesting_depth(deep) == 10_001
    assert nesting_depth({"a": {"b": [1]}}) == 3
    assert nesting_depth(5) == 0


def test_what_refreshes_may_spend_is_what_a_full_rest_sync_costs():
    from shared.core.events import full_sync_requests, keys_within

    read = {"clients": 5000, "sites": 5400, "contracts": 15086, "invoices": 10046, "items": 40}
    # A token, then 50 + 54 + 151 + 101 + 1 pages of 100.
    assert full_sync_requests(read, 100) == 358
    assert full_sync_requests({}, 100) == 6  # one page of every list at the least
    keys = ["client|1", "contract|7", "client|2"]
    assert keys_within(keys, 1 + 4 + 5 + 4) == keys  # a token, 4 a client, 5 a contract
    assert keys_within(keys, 1 + 4 + 5) == keys[:2]
    assert keys_within(keys, 4) == []
