"""`POST /api/halo/events`: its own credential, bounded bodies, 202 and one message per client on
a real (Azurite) queue, through the host's routing (sandbox.devhost) and the real handler."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import pytest

from shared.api.halo_webhook import MAX_BODY
from shared.api.problems import PROBLEM_JSON
from shared.core.events import EVENTS_QUEUE, MAX_DEPTH, MAX_EVENTS
from shared.runtime.background import after_events
from shared.runtime.process import get_store
from shared.store.event_state import RECEIVER, read_stats

pytestmark = pytest.mark.integration
SECRET = "a-long-random-webhook-secret-0123456789"
SAMPLES = Path(__file__).parents[1] / "fixtures" / "halo-webhooks"
PATH = "/api/halo/events"
EVENT = {"event": "Client Updated", "object_id": 1}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def bearer(token: str = SECRET) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    encoded = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {encoded}"}


@pytest.fixture
def webhook(configure, app_host):
    """The app with the webhook's secret set (HaloPSA is never called by the receiver)."""
    configure("https://msp.halopsa.com", HALO_WEBHOOK_SECRET=SECRET)
    return app_host


def post(host, body: bytes, headers: dict[str, str]):
    status, out, payload = host.dispatch("POST", PATH, headers, body)
    return status, out, payload


def queued(host) -> list[dict]:
    return [json.loads(m) for m in host.queues.peek(EVENTS_QUEUE)]


def test_off_without_its_secret_is_404(configure, app_host):
    configure("https://msp.halopsa.com")
    status, headers, body = post(app_host, sample("client-updated.json"), bearer())
    assert status == 404
    assert headers["Content-Type"].startswith(PROBLEM_JSON)
    assert json.loads(body)["type"].endswith("/webhook-off")
    assert queued(app_host) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("wrong-" + SECRET),
        bearer(""),
        {"authorization": "Bearer"},
        basic("halo", "wrong"),
        basic(SECRET, "x"),  # the secret as the user name is not the password
        {"authorization": "Basic !!!not-base64!!!"},
        {"authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()},  # no colon
        {"authorization": f"Digest {SECRET}"},
        {"x-functions-key": SECRET},
    ],
    ids=lambda h: next(iter(h.values()), "none")[:14],
)
def test_a_missing_or_wrong_credential_is_401(webhook, headers):
    status, out, body = post(webhook, sample("client-updated.json"), headers)
    assert status == 401
    assert out["Content-Type"].startswith(PROBLEM_JSON)
    assert "Basic" in out["WWW-Authenticate"] and "Bearer" in out["WWW-Authenticate"]
    assert json.loads(body)["status"] == 401
    assert queued(webhook) == []


@pytest.mark.parametrize("headers", [bearer(), basic("halo", SECRET), basic("", SECRET)])
def test_bearer_and_basic_credentials_are_accepted(webhook, headers):
    status, _, body = post(webhook, sample("client-updated.json"), headers)
    assert status == 202, body
    assert json.loads(body)["queued"] == 1


def test_202_and_one_message_per_client_on_the_queue(webhook):
    # Two contract events of client 1, a recurring invoice of client 6, a ticket of client 1.
    batch = [
        json.loads(sample("contract-updated.json")),
        {**json.loads(sample("contract-updated.json")), "contract": {"id": 1, "client_id": 1}},
        {**json.loads(sample("contract-updated.json")), "contract": {"id": 2, "client_id": "1"}},
        json.loads(sample("recurring-invoice-updated.json")),
        json.loads(sample("ticket-status-changed.real.json")),
    ]
    status, out, body = post(webhook, json.dumps(batch).encode(), bearer())
    assert status == 202 and out["Content-Type"].startswith("application/json")
    answer = json.loads(body)
    assert (answer["events"], answer["queued"], answer["ignored"]) == (5, 3, 1)
    messages = queued(webhook)
    assert sorted((m["target"], m["id"]) for m in messages) == [
        ("client", 1),
        ("client", 2),
        ("client", 6),
    ]
    assert {m["delivery"] for m in messages} == {answer["delivery"]}
    assert next(m for m in messages if m["id"] == 1)["events"] == 2


def test_a_contract_without_its_client_is_queued_for_resolution(webhook):
    status, _, _ = post(webhook, sample("contract-event-information-only.json"), bearer())
    assert status == 202
    assert [(m["target"], m["id"]) for m in queued(webhook)] == [("contract", 9)]


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        (b"x" * (MAX_BODY + 1), 413, "too-large"),
        (json.dumps([EVENT] * (MAX_EVENTS + 1)).encode(), 413, "too-many-events"),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), 400, "bad-json"),
        (b"[" * 100_000, 400, "bad-json"),
        (b"not json", 400, "bad-json"),
        (b"\xff\xfe\x00", 400, "bad-json"),
        (b"", 400, "bad-json"),
        (b'"a string"', 400, "bad-json"),
        (b"42", 400, "bad-json"),
    ],
    ids=["huge", "too-many", "deep", "very-deep", "text", "binary", "empty", "string", "number"],
)
def test_bodies_past_the_bounds_are_problems_and_queue_nothing(webhook, body, status, slug):
    answer, out, payload = post(webhook, body, bearer())
    assert answer == status
    assert out["Content-Type"].startswith(PROBLEM_JSON)
    assert json.loads(payload)["type"].endswith("/" + slug)
    assert queued(webhook) == []


def test_unknown_kinds_and_unusable_events_are_accepted_and_counted(webhook):
    status, _, body = post(webhook, sample("batch.json"), bearer())
    assert status == 202
    answer = json.loads(body)
    assert (answer["unknown"], answer["unusable"], answer["queued"]) == (1, 1, 1)
    after_events.wait(timeout=30)
    stats = read_stats(get_store(), RECEIVER)
    assert stats is not None
    assert stats["counts"]["deliveries"] == 1 and stats["counts"]["unknown"] == 1
    assert stats["unknown_names"] == ["Quotation Approved"]


def test_a_replayed_delivery_is_accepted_again_and_queues_the_same_clients(webhook):
    first = post(webhook, sample("batch.json"), bearer())
    again = post(webhook, sample("batch.json"), bearer())
    assert first[0] == again[0] == 202
    keys = [(m["target"], m["id"]) for m in queued(webhook)]
    assert keys == [("client", 1), ("client", 1)]  # the refresh makes the second a no-op


def test_neither_the_credential_nor_the_payload_is_logged(webhook, caplog):
    caplog.set_level(logging.DEBUG)
    post(webhook, sample("contract-updated.json"), bearer())
    post(webhook, sample("contract-updated.json"), bearer("wrong-secret-value"))
    after_events.wait(timeout=30)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert SECRET not in text and "wrong-secret-value" not in text
    assert "Fabrikam" not in text and "MSEC-0003" not in text
    lines = [json.loads(m) for m in text.splitlines() if '"event": "halo_webhook"' in m]
    assert [line["status"] for line in lines] == [202, 401]
    assert lines[0]["messages"] == 1 and lines[0]["contract"] == 1
