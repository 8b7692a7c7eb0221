"""`POST /api/halo/events`: HaloPSA's outbound webhook, checked, bounded, and queued per client.

The route is anonymous at the host (HaloPSA cannot send a function key in a header) and checks its
own credential, HALO_WEBHOOK_SECRET, sent by HaloPSA as the Basic password (any user name) or
the Bearer token, compared in constant time. Never a shared admin key: who holds this secret can
only ask the app to look at a client again. Unset, the route answers 404, as if it did not exist.

The answer is 202 at once: HaloPSA disables a webhook after a number of failed deliveries, so the
work (reading the client from HaloPSA, publishing) happens in the queue function. What a delivery
held is counted after the response (shared.store.event_state).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.api.problems import ApiError, problem
from shared.api.replies import Reply
from shared.core.events import MAX_DEPTH, MAX_EVENTS, Extraction, extract, nesting_depth
from shared.settings import Settings
from shared.store.event_state import (
    RECEIVER,
    add_counts,
    add_pending,
    keep_last,
    refreshed_at,
    update_stats,
)
from shared.store.repository import Store

log = logging.getLogger("halo_immy.events")

# A delivery of full objects with linked objects runs to tens of KiB per event; batches of them
# stay well inside this. Past it the answer is 413 (ask HaloPSA for smaller payloads or batches).
MAX_BODY = 4 * 1024 * 1024
CHALLENGE = 'Basic realm="halo-immy", charset="UTF-8", Bearer realm="halo-immy"'
_LAST_UNKNOWN = 10


@dataclass(frozen=True, slots=True)
class Delivery:
    """A delivery taken in: the answer, the queue messages (JSON), and what to count."""

    reply: Reply
    messages: list[str] = field(default_factory=list)
    extraction: Extraction | None = None
    received_at: datetime | None = None


def receive(settings: Settings, authorization: str | None, body: bytes, now: datetime) -> Delivery:
    """Check, bound and read one delivery; ApiError for a 4xx (404 off, 401 credential, 413 too
    large, 400 not JSON or nested too deeply)."""
    secret = settings.halo_webhook_secret
    if secret is None:
        raise ApiError(problem(404, "webhook-off", "the HaloPSA webhook is not configured"))
    if not credential_ok(authorization, secret.get_secret_value()):
        raise ApiError(
            problem(401, "bad-credential", "the webhook's credential is missing or wrong"),
            {"WWW-Authenticate": CHALLENGE},
        )
    document = _document(body)
    delivery = uuid.uuid4().hex
    found = extract(document, received_at=now, delivery=delivery)
    answer = {
        "status": "accepted",
        "delivery": delivery,
        "events": found.counts["events"],
        "queued": len(found.messages),
        "ignored": found.counts["ignored"],
        "unknown": found.counts["unknown"],
        "unusable": found.counts["unusable"],
    }
    return Delivery(
        reply=Reply(202, json.dumps(answer).encode()),
        messages=[m.model_dump_json() for m in found.messages],
        extraction=found,
        received_at=now,
    )


def credential_ok(authorization: str | None, secret: str) -> bool:
    """Whether the Authorization header carries the secret, as a Bearer token or the password of
    Basic credentials (any user name); compared in constant time."""
    scheme, _, value = (authorization or "").strip().partition(" ")
    given: str | None = None
    if scheme.casefold() == "bearer":
        given = value.strip()
    elif scheme.casefold() == "basic":
        given = _basic_password(value.strip())
    # Digests first, so neither the length nor the content of the secret shows in the timing.
    expected = hashlib.sha256(secret.encode()).digest()
    offered = hashlib.sha256((given or "").encode("utf-8", "surrogatepass")).digest()
    return given is not None and hmac.compare_digest(expected, offered)


def _basic_password(encoded: str) -> str | None:
    try:
        decoded = base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    _user, colon, password = decoded.partition(":")
    return password if colon else None


def _document(body: bytes) -> dict[str, Any] | list[Any]:
    if len(body) > MAX_BODY:
        raise ApiError(problem(413, "too-large", f"a delivery may be at most {MAX_BODY} bytes"))
    try:
        document = json.loads(body)
    except RecursionError:
        raise ApiError(problem(400, "bad-json", "the body is nested too deeply")) from None
    except ValueError:
        raise ApiError(problem(400, "bad-json", "the body is not valid JSON")) from None
    if not isinstance(document, dict | list):
        raise ApiError(problem(400, "bad-json", "the body must be an event or a list of events"))
    if nesting_depth(document) > MAX_DEPTH:
        raise ApiError(problem(400, "bad-json", f"the body nests deeper than {MAX_DEPTH} levels"))
    if isinstance(document, list) and len(document) > MAX_EVENTS:
        raise ApiError(
            problem(413, "too-many-events", f"a delivery may hold at most {MAX_EVENTS} events")
        )
    return document


def count_delivery(store: Store, delivery: Delivery) -> None:
    """Add a delivery's counts to the receiver's stats, and mark the keys it names pending (after
    the response): the refresh that runs first drains every key pending, so a burst of events
    is read in a few refreshes, and the messages of keys already read are coalesced."""
    found, at = delivery.extraction, delivery.received_at
    if found is None or at is None:
        return
    for message in found.messages:
        read_at = refreshed_at(store, message.key)
        if read_at is None or read_at < at:  # not read since (its message may be done already)
            add_pending(store, message.key, at)

    def change(document: dict[str, Any]) -> None:
        add_counts(document, {"deliveries": 1, **found.counts})
        document["last_at"] = at.isoformat()
        for name in found.unknown_names:
            if name not in document.get("unknown_names", []):
                keep_last(document, "unknown_names", name, _LAST_UNKNOWN)

    update_stats(store, RECEIVER, change)


def log_delivery(status: int, counts: Mapping[str, int]) -> None:
    """One structured line per delivery: the status and counts, no payload values."""
    line = {"event": "halo_webhook", "status": status, **dict(counts)}
    log.info(json.dumps(line, sort_keys=True))
