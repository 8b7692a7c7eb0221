"""The writer lease's row (shared.store.lease) against a real Azurite: one owner at a time, and
each renewal and release one write on the holder's last ETag, retried where a connection drops."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import ServiceRequestError, ServiceResponseError

from shared.store.repository import Store
from shared.store.service import pooled_transport
from tests.conftest import azurite_service

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_names = itertools.count()


@pytest.fixture
def store(azurite) -> Store:
    return Store(azurite_service(azurite), prefix=f"lease{next(_names)}x")


def test_lease_admits_one_owner_until_it_expires(store):
    ttl = timedelta(minutes=10)
    assert store.acquire_lease("a", now=NOW, ttl=ttl)
    assert not store.acquire_lease("b", now=NOW + timedelta(minutes=5), ttl=ttl)
    assert store.acquire_lease("b", now=NOW + timedelta(minutes=11), ttl=ttl)  # a's went stale
    store.release_lease("a")  # not a's any more: must not free b's
    assert not store.acquire_lease("c", now=NOW + timedelta(minutes=12), ttl=ttl)
    store.release_lease("b")
    assert store.acquire_lease("c", now=NOW + timedelta(minutes=12), ttl=ttl)


def test_a_lease_is_renewed_by_its_owner_only_and_a_takeover_names_the_stale_owner(store):
    ttl = timedelta(minutes=5)
    started = NOW - timedelta(minutes=1)
    assert store.acquire_lease("a", now=NOW, ttl=ttl, started_at=started)
    assert store.renew_lease("a", now=NOW + timedelta(minutes=4), ttl=ttl)
    # Renewed: still a's at minute 8, though the first grant alone would have expired at 5.
    assert not store.acquire_lease("b", now=NOW + timedelta(minutes=8), ttl=ttl)
    assert not store.renew_lease("b", now=NOW + timedelta(minutes=8), ttl=ttl)
    grant = store.acquire_lease("b", now=NOW + timedelta(minutes=10), ttl=ttl)
    assert grant and grant.replaced.owner == "a" and grant.replaced.started_at == started
    assert not store.renew_lease("a", now=NOW + timedelta(minutes=10), ttl=ttl)  # a lost it
    assert store.lease().owner == "b"


def test_a_renewal_with_its_last_etag_is_one_write_and_a_lost_answer_falls_back_to_a_read(
    azurite,
):
    sent: list[str] = []
    service = azurite_service(
        azurite, raw_request_hook=lambda r: sent.append(r.http_request.method)
    )
    store = Store(service, prefix=f"t{next(_names)}x")
    ttl = timedelta(minutes=2)
    grant = store.acquire_lease("a", now=NOW, ttl=ttl)
    assert grant and grant.etag
    sent.clear()
    renewed = store.renew_lease("a", now=NOW + timedelta(minutes=1), ttl=ttl, etag=grant.etag)
    assert renewed and renewed != grant.etag
    assert len(sent) == 1  # the conditional write alone
    assert store.lease().expires_at == NOW + timedelta(minutes=3)
    # The answer to that renewal was lost, so this writer still holds the grant's ETag: the
    # write is refused, the lease is read, and it is still ours.
    sent.clear()
    again = store.renew_lease("a", now=NOW + timedelta(minutes=2), ttl=ttl, etag=grant.etag)
    assert again and len(sent) == 3
    assert store.lease().owner == "a" and store.lease().started_at == NOW
    # Expired and taken over: neither the ETag nor the read renews it, and a's release leaves it.
    taken = store.acquire_lease("b", now=NOW + timedelta(minutes=9), ttl=ttl)
    assert store.renew_lease("a", now=NOW + timedelta(minutes=9), ttl=ttl, etag=again) is None
    store.release_lease("a", etag=again)
    assert store.lease().owner == "b"
    sent.clear()
    store.release_lease("b", etag=taken.etag)
    assert len(sent) == 1  # the conditional delete alone
    assert store.lease() is None


@pytest.mark.parametrize("lost", ["before sending", "after it landed"])
def test_a_renewal_whose_connection_drops_is_retried_and_keeps_the_lease(azurite, lost):
    transport = pooled_transport()
    real = transport.send
    dropped: list[str] = []

    def send(request, **kwargs):
        if request.method == "PATCH" and not dropped:
            dropped.append(lost)
            if lost == "after it landed":
                real(request, **kwargs)
                raise ServiceResponseError("connection reset reading the answer (injected)")
            raise ServiceRequestError("connection reset (injected)")
        return real(request, **kwargs)

    transport.send = send  # type: ignore[method-assign]
    service = azurite_service(azurite, transport=transport, retry_backoff_factor=0)
    store = Store(service, prefix=f"t{next(_names)}x")
    ttl = timedelta(minutes=2)
    grant = store.acquire_lease("a", now=NOW, ttl=ttl)
    assert store.renew_lease("a", now=NOW + timedelta(minutes=1), ttl=ttl, etag=grant.etag)
    assert dropped == [lost]
    assert store.lease().owner == "a"
    assert store.lease().expires_at == NOW + timedelta(minutes=3)
