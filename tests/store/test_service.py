"""One Table Storage service client and connection pool per process, shared by every table and
thread, against a real Azurite."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.runtime.process import get_store
from shared.settings import load_settings
from shared.store.repository import Store
from shared.store.service import table_service

pytestmark = pytest.mark.integration
CALLERS = 20


def test_the_process_store_and_its_table_clients_are_built_once(configure):
    configure("http://127.0.0.1:9")
    store = get_store()
    assert get_store() is store
    assert store.table("Rules") is store.table("Rules")
    assert store.table("Rules", create=False) is store.table("Rules")


def test_concurrent_callers_share_one_pool_and_reuse_its_connections(configure):
    configure("http://127.0.0.1:9")
    settings = load_settings()
    store = Store(table_service(settings), prefix=settings.tables_prefix)
    store.put_rule_document("r", {"software": "R"})
    barrier = threading.Barrier(CALLERS)

    def read(_: int) -> int:
        barrier.wait()  # all callers in flight together
        return len(store.rule_documents())

    with ThreadPoolExecutor(CALLERS) as pool:
        assert list(pool.map(read, range(CALLERS))) == [1] * CALLERS
        transport = store.service._client._client._pipeline._transport  # the one transport
        pools = transport.session.get_adapter(store.service.url).poolmanager
        connections = pools.connection_from_url(store.service.url)
        # The pool keeps a connection for each caller in flight, so none is opened per request
        # and thrown away (requests' default keeps 10).
        assert connections.pool.maxsize >= CALLERS
        opened = connections.num_connections
        assert opened <= CALLERS
        barrier.reset()
        assert list(pool.map(read, range(CALLERS))) == [1] * CALLERS
    # The second round found every connection it needed in the pool.
    assert connections.num_connections == opened
