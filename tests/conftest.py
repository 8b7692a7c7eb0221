"""Session fixtures for real components: Azurite (Table Storage and queues), the HaloPSA sandbox,
and stores a real demo sync set up once per worker, which tests start from a copy of
(`SyncedTemplates`). Every process of the run trusts no certificate authority (`pytest_configure`).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from azure.data.tables import TableEntity, TableServiceClient

from sandbox.processes import (
    AZURITE,
    AZURITE_QUEUE,
    Azurite,
    AzuriteQueue,
    azurite_queue,
    azurite_table,
    devhost_process,
)
from shared.core.mapping import MatchKind
from shared.core.rules import Rule
from shared.core.targets import Quantities, Target
from shared.runtime.background import after_response
from shared.runtime.process import get_settings, get_store
from shared.store.base import MAX_BATCH_BYTES, MAX_BATCH_ENTITIES
from shared.store.batch import submit_upserts
from shared.store.generations import read_clients, read_items, read_rule_targets
from shared.store.repository import Store
from shared.store.service import pooled_transport

# How many workers, and how they share start-up (tests/workers.py); the heap collection built,
# frozen out of the garbage collector (tests/frozen_heap.py); pytester for testing the first.
pytest_plugins = ("tests.workers", "tests.frozen_heap", "pytester")

DEMO_RULES = Path(__file__).resolve().parent.parent / "sandbox" / "demo_rules.json"
TEMPLATE_MINUTES = 10
_TLS_VARIABLES = ("SSL_CERT_FILE", "SSL_CERT_DIR")
_NO_PROXY_VARIABLES = ("no_proxy", "NO_PROXY")
_TLS_BEFORE = pytest.StashKey[dict[str, str | None]]()


def pytest_configure(config: pytest.Config) -> None:
    """Trust no certificate authority, and reach loopback without a proxy, in this process and
    the processes it starts.

    httpx loads a CA bundle (30-130 ms of CPU) for every client it builds, and the tests build
    hundreds (tests/api alone about 400), though every call they make is plain HTTP on loopback.
    An empty certificate directory loads at once (httpx reads SSL_CERT_FILE, then SSL_CERT_DIR),
    and with it no test could verify a real TLS endpoint either. A machine whose environment
    names a proxy (a CI runner's http_proxy or all_proxy) would send the tests' loopback calls
    to it: loopback is added to no_proxy, in both spellings.
    """
    names = (*_TLS_VARIABLES, *_NO_PROXY_VARIABLES)
    config.stash[_TLS_BEFORE] = {name: os.environ.get(name) for name in names}
    os.environ.pop("SSL_CERT_FILE", None)
    os.environ["SSL_CERT_DIR"] = tempfile.mkdtemp(prefix="no-ca-")
    for name in _NO_PROXY_VARIABLES:
        os.environ[name] = ",".join(filter(None, (os.environ.get(name), "127.0.0.1,localhost")))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put the process's certificate and proxy settings back and remove the empty directory."""
    shutil.rmtree(os.environ["SSL_CERT_DIR"], ignore_errors=True)
    for name, value in config.stash[_TLS_BEFORE].items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Real Azurite table storage, in memory, on a free loopback port, for the whole session."""
    if not AZURITE.exists():
        pytest.fail(f"{AZURITE} is missing: run `make setup` (npm ci installs azurite@3.35.0)")
    with azurite_table() as running:
        yield running


@pytest.fixture(scope="session")
def azurite_queues() -> Iterator[AzuriteQueue]:
    """Real Azurite queue service, in memory, on a free loopback port, for the whole session."""
    if not AZURITE_QUEUE.exists():
        pytest.fail(f"{AZURITE_QUEUE} is missing: run `make setup` (npm ci installs azurite)")
    with azurite_queue() as running:
        yield running


_queue_prefixes = itertools.count()


@pytest.fixture
def app_host(azurite_queues):
    """The app's functions behind a DevHost whose queue bindings go through Azurite's queue
    service (queue names prefixed per test): `host.dispatch(...)` for HTTP, `host.queues` to
    deliver and inspect queue messages."""
    from sandbox.devhost import DevHost
    from sandbox.queues import QueueRules
    from tests.registry import registered

    host = DevHost(
        registered().values(),
        queue_connection=azurite_queues.connection_string,
        queue_prefix=f"t{next(_queue_prefixes)}x",
    )
    assert host.queues is not None
    # host.json's retries, without its minute between them: a test delivers them at once.
    host.queues.rules = QueueRules(QueueRules.from_host_json().max_dequeue_count, 0)
    yield host
    host.close()


@pytest.fixture
def halo_sandbox():
    """Start HaloPSA sandboxes on free loopback ports; every one is stopped after the test."""
    from sandbox.halo import HaloSandbox

    started: list[HaloSandbox] = []

    def start(data, **kwargs) -> HaloSandbox:
        server = HaloSandbox(data, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


_prefixes = itertools.count()


def app_environment(halo_url: str, azurite: Azurite, prefix: str, **extra: str) -> dict[str, str]:
    """The app's settings (environment) for a HaloPSA URL and a table prefix in `azurite`."""
    return {
        "HALO_BASE_URL": halo_url,
        "HALO_CLIENT_ID": "sandbox-client",
        "HALO_CLIENT_SECRET": "sandbox-secret",
        "HALO_REQUESTS_PER_MINUTE": "100000",
        # REST unless a test asks for SQL reports (tests/sync/test_read.py compares both).
        "HALO_READ_MODE": "rest",
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "TABLES_PREFIX": prefix,
        **extra,
    }


@pytest.fixture
def configure(monkeypatch, azurite):
    """Point the app's settings (environment) at a HaloPSA URL and a fresh table prefix."""

    def apply(halo_url: str, **extra: str) -> None:
        prefix = f"app{next(_prefixes)}x"
        for key, value in app_environment(halo_url, azurite, prefix, **extra).items():
            monkeypatch.setenv(key, value)
        get_settings.cache_clear()
        get_store.cache_clear()

    yield apply
    # Work a test's views left for after their responses (memos, index loads) ends with it.
    after_response.wait(30)
    get_settings.cache_clear()
    get_store.cache_clear()


# A store's tables as read back: each table's name after the prefix, its rows by partition.
Tables = dict[str, dict[str, list[TableEntity]]]


def azurite_service(azurite: Azurite, **kwargs: Any) -> TableServiceClient:
    """A service client for `azurite` over the transport the app's own clients use (unless
    `transport` names another)."""
    kwargs.setdefault("transport", pooled_transport())
    return TableServiceClient.from_connection_string(azurite.connection_string, **kwargs)


def read_tables(service: TableServiceClient, prefix: str) -> Tables:
    """Every row of every table named `prefix` + X, by X and partition."""
    # Prefixes end in "x", so no prefix is the start of another: the names in [prefix, end).
    end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    found: Tables = {}
    names = service.query_tables(
        "TableName ge @low and TableName lt @high", parameters={"low": prefix, "high": end}
    )
    for table in names:
        partitions = found.setdefault(table.name[len(prefix) :], defaultdict(list))
        for row in service.get_table_client(table.name).list_entities():
            partitions[row["PartitionKey"]].append(row)
    return found


def write_tables(service: TableServiceClient, tables: Tables, prefix: str) -> None:
    """Create `tables` under `prefix` and write their rows: keys and typed values; ETags and
    timestamps are the new rows' own, as any write's are."""
    for name, partitions in tables.items():
        table = service.create_table(prefix + name)
        for partition, rows in partitions.items():
            for batch in _batches(rows):
                # The store's own transactions: the SDK's cost ten times the CPU.
                submit_upserts(table, partition, batch)


def _batches(rows: list[TableEntity]) -> Iterator[list[TableEntity]]:
    """`rows` of one partition in transactions within the service's count and size limits."""
    batch: list[TableEntity] = []
    size = 0
    for row in rows:
        weight = 2 * sum(len(str(value)) for value in row.values())  # UTF-16, roughly
        if batch and (len(batch) == MAX_BATCH_ENTITIES or size + weight > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(row)
        size += weight
    if batch:
        yield batch


class SyncedTemplates:
    """Stores set up once per worker process by a real sync, written into each test's own fresh
    table prefix: the copy holds every entity the sync wrote, at a tenth of a sync's cost.

    A template is set up anew after TEMPLATE_MINUTES, so a copy never reads as a sync much older
    than the test's own would have been.
    """

    def __init__(self, azurite: Azurite) -> None:
        self._azurite = azurite
        self._service = azurite_service(azurite)
        self._built: dict[tuple[str, date], tuple[Tables, float]] = {}

    def copy(self, name: str, build: Callable[[], None]) -> None:
        """Write template `name` into the store the settings name, setting it up first if need
        be: `build()` runs with the settings pointed at a demo HaloPSA sandbox of its own and a
        prefix of its own (the test's settings are back when it returns)."""
        key = (name, date.today())
        tables, built = self._built.get(key, ({}, 0.0))
        if not tables or time.monotonic() - built > TEMPLATE_MINUTES * 60:
            tables = self._build(build)
            self._built[key] = (tables, time.monotonic())
        write_tables(self._service, tables, get_settings().tables_prefix)

    def _build(self, build: Callable[[], None]) -> Tables:
        from sandbox.halo import HaloSandbox
        from sandbox.halo_data import demo_data

        prefix = f"template{next(_prefixes)}x"
        with HaloSandbox(demo_data(date.today())) as halo, pytest.MonkeyPatch.context() as patch:
            for key, value in app_environment(halo.url, self._azurite, prefix).items():
                patch.setenv(key, value)
            get_settings.cache_clear()
            get_store.cache_clear()
            try:
                build()
            finally:
                get_settings.cache_clear()
                get_store.cache_clear()
        return read_tables(self._service, prefix)


@pytest.fixture(scope="session")
def synced_templates(azurite: Azurite) -> SyncedTemplates:
    """This worker's stores set up by a real sync, for tests to start from a copy of."""
    return SyncedTemplates(azurite)


def import_demo_rules_and_sync() -> None:
    """Import the demo rules and sync the configured HaloPSA into the configured store."""
    from shared.api.rules import import_rules
    from shared.sync.run import run_sync
    from shared.sync.runs import Outcome

    import_rules(get_store(), DEMO_RULES.read_bytes(), date.today())
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error


@pytest.fixture
def demo_synced(configure, halo_sandbox, synced_templates):
    """The demo data set synced, with the demo rules, into a fresh store (a copy of the store
    one such sync set up in this worker); read caches cleared."""
    from sandbox.halo_data import demo_data
    from shared.api import current as queries

    sandbox = halo_sandbox(demo_data(date.today()))
    configure(sandbox.url)
    synced_templates.copy("demo", import_demo_rules_and_sync)
    queries.clear_caches()
    yield sandbox
    queries.clear_caches()


def immy_settings(immy) -> dict[str, str]:
    """App settings that point ImmyBot (and its Entra ID stand-in) at an ImmyBot sandbox."""
    return {
        "IMMY_BASE_URL": immy.url,
        "IMMY_TENANT_ID": immy.entra_tenant,
        "IMMY_CLIENT_ID": "immy-client",
        "IMMY_CLIENT_SECRET": "immy-secret",
        "IMMY_AUTHORITY_HOST": immy.url,
    }


@dataclass(frozen=True)
class DevhostOutput:
    """What the devhost printed at start: where it listens, each route with the keys printed for
    it, the URLs worth opening (label, URL), and the keys by function name ("master": the master
    key), for tests that call routes by function; and, once started, its PID and storage prefix."""

    url: str
    routes: dict[str, tuple[str, ...]]
    sights: list[tuple[str, str]]
    keys: dict[str, str]
    pid: int = 0
    prefix: str = ""


def parse_devhost_output(text: str) -> DevhostOutput:
    """Read the devhost's start-up output (sandbox/devhost.py `_serve`)."""
    from sandbox.devhost import MASTER_KEY, function_key
    from tests.registry import registered

    routes: dict[str, tuple[str, ...]] = {}
    sights: list[tuple[str, str]] = []
    section = ""
    for line in text.splitlines():
        if not line.startswith(" "):
            section = line.split(" ", 1)[0]
        elif section == "keys":
            methods, path, *keys = line.split()
            # An anonymous route prints "(none needed)": no key is asked for.
            routes[f"{methods} {path}"] = tuple(k for k in keys if k.startswith("dev-"))
        elif section == "open" and line.startswith("    "):
            sights.append((sights.pop()[0], line.strip()))
        elif section == "open":
            sights.append((line.strip(), ""))
    url = text.split("listening on ", 1)[1].split()[0]
    printed = {key for keys in routes.values() for key in keys}
    keys = {name: function_key(name) for name in registered() if function_key(name) in printed}
    if MASTER_KEY in printed:
        keys["master"] = MASTER_KEY
    return DevhostOutput(url, routes, sights, keys)


def devhost_prefix() -> str:
    """A table and queue prefix no other devhost or test of this worker uses."""
    return f"dev{next(_prefixes)}x"


@pytest.fixture(scope="session")
def devhost_flags(azurite: Azurite, azurite_queues: AzuriteQueue) -> Callable[[str], list[str]]:
    """The devhost flags that keep its tables and queues in this worker's Azurite under a prefix:
    starting Azurite's two services of its own would cost each devhost about 2.6 s of CPU."""

    def flags(prefix: str) -> list[str]:
        return [
            *("--tables", azurite.connection_string, "--tables-prefix", prefix),
            *("--queues", azurite_queues.connection_string, "--queues-prefix", prefix),
        ]

    return flags


@pytest.fixture(scope="module")
def devhost_output(devhost_flags: Callable[[str], list[str]]) -> Iterator[DevhostOutput]:
    """`make run`'s devhost (sandboxes, a demo sync; this worker's Azurite) in its own process,
    and what it printed at start."""
    prefix = devhost_prefix()
    with devhost_process(*devhost_flags(prefix)) as running:
        yield replace(parse_devhost_output(running.output), pid=running.pid, prefix=prefix)


@pytest.fixture(scope="module")
def devhost(devhost_output: DevhostOutput) -> tuple[str, dict[str, str]]:
    """The devhost of `devhost_output`: (url, keys by function name)."""
    return devhost_output.url, devhost_output.keys


def target(client: int, tenant: int | None) -> Target:
    """A target of one fixed licence for client `client`, mapped by name to `tenant` (or not)."""
    return Target(
        client_id=client,
        client_name=f"C{client}",
        immy_tenant_id=tenant,
        immy_tenant_name=None,
        mapping=MatchKind.NAME if tenant else MatchKind.UNMAPPED,
        sites=[],
        quantity=1,
        quantities=Quantities(fixed=1, calculated=0, calculated_unknown=0),
        reasons=[],
    )


def served(store: Store, rules: Iterable[Rule]) -> dict[str, Any]:
    """Every record, and each rule's targets with their reasons, a reader sees through the
    current pointer (JSON-ready), with the generation it read."""
    pointer = store.current()
    assert pointer is not None
    records = read_clients(store, pointer.generation)

    def dump(models: Iterable[Any]) -> list[dict[str, Any]]:
        return [m.model_dump(mode="json") for m in models]

    out: dict[str, Any] = {
        "generation": pointer.generation,
        "clients": dump(r.client for r in records),
        "sites": dump(s for r in records for s in r.sites),
        "contracts": dump(c for r in records for c in r.contracts),
        "invoices": dump(i for r in records for i in r.invoices),
        "items": dump(read_items(store, pointer.generation)),
    }
    for rule in rules:
        found = read_rule_targets(store, pointer.generation, rule.key)
        assert found is not None, f"no targets partition for {rule.software}"
        out[rule.software] = dump(found)
    return out
