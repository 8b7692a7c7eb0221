"""How the app reaches Table Storage: one service client, and one pooled connection transport under
it, per process.

Every table client the store hands out (`TableServiceClient.get_table_client`) wraps the service
client's transport, so all tables share one set of urllib3 connection pools; the Azure SDK
documents its clients as safe to share between threads, which is how the handlers use them (the
Functions worker's thread pool, and `asyncio.to_thread` from async handlers).

The pool keeps as many connections per host as the worker runs requests at once (requests' session
kept 10: with 20 concurrent callers, the other 10 opened a connection, a TCP and in Azure a TLS
handshake, per request and threw it away). The transport itself is `shared.store.transport`.
"""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableServiceClient

from shared.settings import Settings
from shared.store.transport import PooledTransport

# Connections kept open per host: the Functions worker's default thread pool is at most 32 threads.
POOL_CONNECTIONS = 32
# azure-core waits 300 s to connect and 300 s per read by default, per attempt: a stalled storage
# connection would hold a request (and a worker thread) far past the HTTP front end's 230 s. A
# Table round trip takes milliseconds, a 4 MiB transaction a second or two.
CONNECT_TIMEOUT_SECONDS = 5.0
READ_TIMEOUT_SECONDS = 30.0


def pooled_transport(pool: int = POOL_CONNECTIONS) -> PooledTransport:
    """A transport keeping `pool` connections per host for reuse, with bounded timeouts.

    As azure-core's own transports do, it leaves retries and redirects to the SDK's policies.
    """
    return PooledTransport(
        pool_size=pool,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
    )


def table_service(settings: Settings, **kwargs: Any) -> TableServiceClient:
    """The service client for the configured account: a connection string (Azurite, account key)
    or an endpoint reached with DefaultAzureCredential, over a pooled transport."""
    kwargs.setdefault("transport", pooled_transport())
    if settings.tables_connection_string is not None:
        return TableServiceClient.from_connection_string(
            settings.tables_connection_string.get_secret_value(), **kwargs
        )
    from azure.identity import DefaultAzureCredential  # imported only where it is used

    return TableServiceClient(
        str(settings.tables_endpoint), credential=DefaultAzureCredential(), **kwargs
    )
