"""Probes of the read path as an operator meets it: storage faults between the app and Azurite (a
fault-injecting TCP proxy), retries after a half-applied admin write, rule edits on a later day,
hostile spellings against the answer cache, and secrets in errors.

Every test states the correct behaviour; the ones that still fail because the fix lies outside the
read path are marked xfail(strict) with the fix described.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import azure.functions as func
import pytest

import shared.api.current as queries
import shared.api.rules as rule_admin
import targets_http
from sandbox.processes import DEV_ACCOUNT, Azurite, free_port
from shared.api.rules import put_rule
from shared.api.targets import answer_targets
from shared.api.targets_query import TargetsQuery
from shared.runtime.process import get_settings, get_store
from shared.store import read_cache
from shared.store.base import StoreError
from shared.store.read_cache import AnswerCache, CurrentCache
from shared.store.repository import Store
from shared.store.service import pooled_transport
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.registry import handler

pytestmark = pytest.mark.integration
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"


# -- a fault-injecting TCP proxy ------------------------------------------------------------------


class FaultProxy:
    """A loopback TCP proxy to Azurite whose behaviour a test switches per connection:

    - `pass`: forward both ways;
    - `reset`: accept, then close at once (a dropped connection);
    - `503`: answer every request with a bare HTTP 503 (the service's "server busy");
    - `500`: the same with a 500;
    - `cut`: forward the request, then pass on the answer's head and a few body bytes and close
      (a mid-body disconnect).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self._mode = "pass"
        self._live: set[asyncio.StreamWriter] = set()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.AbstractServer | None = None

    def start(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait()
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for writer in list(self._live):
                writer.transport.abort()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        """Switch, dropping every open connection: pooled ones meet the new behaviour too."""

        async def switch() -> None:
            self._mode = mode
            for writer in list(self._live):
                writer.transport.abort()
            self._live.clear()

        asyncio.run_coroutine_threadsafe(switch(), self._loop).result()

    def connection_string(self, azurite: Azurite) -> str:
        return azurite.connection_string.replace(f":{azurite.port}/", f":{self.port}/")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def serve() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()

        self._loop.run_until_complete(serve())
        self._loop.run_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self._mode
        self._live.add(writer)
        try:
            if mode == "reset":
                return
            if mode in ("503", "500"):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = _content_length(head)
                    if length:
                        await reader.readexactly(length)
                    reason = "Server Busy" if mode == "503" else "Internal Server Error"
                    body = b'{"odata.error":{"code":"ServerBusy","message":{"value":"busy"}}}'
                    writer.write(
                        f"HTTP/1.1 {mode} {reason}\r\nContent-Type: application/json\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n".encode()
                        + body
                    )
                    await writer.drain()
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
            self._live.add(up_writer)
            if mode == "cut":
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                up_writer.write(head + (await reader.readexactly(length) if length else b""))
                await up_writer.drain()
                answer = await up_reader.readuntil(b"\r\n\r\n")
                length = _content_length(answer)
                if length > 1:  # the head and half the body
                    writer.write(answer + await up_reader.readexactly(length // 2))
                else:  # no body to cut: cut the head
                    writer.write(answer[: len(answer) // 2])
                await writer.drain()
                up_writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            self._live.discard(writer)
            writer.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def proxy(azurite) -> Iterator[FaultProxy]:
    running = FaultProxy(azurite.port).start()
    yield running
    running.stop()


@pytest.fixture
def faulty(demo_synced, proxy, azurite, monkeypatch) -> FaultProxy:
    """The app's handlers reach the demo's tables through the proxy, over the app's own pooled
    transport; no SDK retries, so a fault reaches the handler at once (the SDK's retries only
    delay the same outcome)."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(
        proxy.connection_string(azurite), transport=pooled_transport(), retry_total=0
    )
    store = Store(service, prefix=get_settings().tables_prefix)
    monkeypatch.setattr(targets_http, "get_store", lambda: store)
    return proxy


def call(name: str, method: str = "GET", body: bytes = b"", route=None, **params):
    request = func.HttpRequest(
        method, "http://localhost/api/x", body=body, params=params, route_params=route or {}
    )
    return handler(name)(request)


def assert_storage_problem(response: func.HttpResponse) -> None:
    assert response.status_code == 503, response.get_body()
    assert response.mimetype == "application/problem+json"
    assert response.headers.get("Retry-After")
    assert b"Traceback" not in response.get_body()


# -- storage faults -------------------------------------------------------------------------------

FAULTS = ["reset", "503", "500", "cut"]
CALLS = [
    ("targets", "GET", b"", None, {"software": "Huntress"}),
    ("catalog", "GET", b"", None, {}),
    ("reconciliation", "GET", b"", None, {"software": "Huntress"}),
    ("rules", "GET", b"", {"area": "rules"}, {}),
    ("rules", "PUT", DEMO_RULES.read_bytes(), {"area": "rules"}, {}),
    (
        "rules",
        "PUT",
        b'{"immy_tenant_id": 5}',
        {"area": "mappings", "key": "1"},
        {},
    ),
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_storage_fault_is_a_503_problem_and_the_pool_recovers(faulty, fault):
    """Storage dropping, refusing (500/503) or cutting an answer mid-body: every API answer is a
    503 problem with Retry-After, never an unhandled exception (the host's bare 500), and once
    storage is back the same pooled transport answers (no poisoned connection, no cached error)."""
    failures: list[str] = []
    for name, method, body, route, params in CALLS:
        label = f"{method} {name} {route or params}"
        faulty.mode = fault
        queries.clear_caches()
        try:
            response = call(name, method, body, route, **params)
        except Exception as error:
            failures.append(f"{label}: raised {type(error).__name__}")
        else:
            if response.status_code != 503 or not response.headers.get("Retry-After"):
                failures.append(f"{label}: {response.status_code} {response.get_body()[:200]!r}")
        faulty.mode = "pass"
        queries.clear_caches()
        again = call(name, method, body, route, **params)
        if again.status_code not in (200, 201):
            failures.append(f"{label} after recovery: {again.status_code}")
    assert not failures, failures


def test_sync_status_during_a_storage_fault_is_a_503_problem(
    demo_synced, proxy, azurite, monkeypatch
):
    from azure.data.tables import TableServiceClient

    import sync_timer

    service = TableServiceClient.from_connection_string(
        proxy.connection_string(azurite), transport=pooled_transport(), retry_total=0
    )
    store = Store(service, prefix=get_settings().tables_prefix)
    monkeypatch.setattr(sync_timer, "get_store", lambda: store, raising=False)
    monkeypatch.setattr("shared.runtime.process.get_store", lambda: store)
    proxy.mode = "503"
    try:
        response = call("sync_status")
    except Exception as error:
        pytest.fail(f"sync/status raised {type(error).__name__}")
    assert_storage_problem(response)


def test_storage_calls_have_bounded_timeouts():
    """A stalled storage connection (accepted, never answered) must not hold a request, and a
    worker thread, for azure-core's default 300 s per attempt (times the SDK's retries): the
    pooled transport states connect and read timeouts well inside the HTTP front end's 230 s."""
    transport = pooled_transport()
    assert transport.connect_timeout <= 10
    assert transport.read_timeout <= 60


def test_a_storage_error_never_shows_the_sas_token(caplog):
    """With a SAS connection string and storage unreachable, neither the problem body nor any log
    line (DEBUG included) shows the signature: requests' connection errors echo the request URL,
    query string and all."""
    secret = "sig=Zm9vYmFyU0VDUkVUc2lnbmF0dXJl"
    port = free_port()  # nothing listens: connection refused
    service = table_service_with_sas(port, secret)
    store = Store(service, prefix="leak")
    caplog.set_level(logging.DEBUG)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(targets_http, "get_store", lambda: store)
        queries.clear_caches()
        response = call("targets", software="Huntress")
    assert_storage_problem(response)
    assert secret not in response.get_body().decode()
    assert "Zm9vYmFyU0VDUkVUc2lnbmF0dXJl" not in caplog.text


def table_service_with_sas(port: int, secret: str):
    from azure.data.tables import TableServiceClient

    connection = (
        f"TableEndpoint=http://127.0.0.1:{port}/{DEV_ACCOUNT};"
        f"SharedAccessSignature=sv=2019-02-02&ss=t&srt=sco&sp=rwdlacu&{secret}"
    )
    return TableServiceClient.from_connection_string(
        connection, transport=pooled_transport(), retry_total=0
    )


# -- retries after a half-applied admin write -------------------------------------------------------


def _fail_once(monkeypatch) -> None:
    """The next re-resolution of a generation fails (storage went away after the rule was stored)."""
    original = rule_admin.apply_rules
    failed: list[bool] = []

    def flaky(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise StoreError("transaction 0 on partition 'targets': ServiceRequestError")
        return original(*args, **kwargs)

    monkeypatch.setattr(rule_admin, "apply_rules", flaky)


def test_a_rule_delete_retried_after_a_storage_fault_removes_its_targets(demo_synced, monkeypatch):
    """DELETE /rules/Huntress stores the deletion, then storage fails before the generation is
    re-resolved: a 503. The operator retries, as Retry-After says. The retry must finish the job:
    targets for Huntress stop being served (not a 404 for the delete while the targets API keeps
    answering for the deleted rule until the next sync)."""
    _fail_once(monkeypatch)
    route = {"area": "rules", "key": "Huntress"}
    assert_storage_problem(call("rules", "DELETE", route=route))
    retried = call("rules", "DELETE", route=route)
    assert retried.status_code in (204, 404)
    assert call("targets", software="Huntress").status_code == 404


def test_a_rules_import_retried_after_a_storage_fault_applies_the_rules(demo_synced, monkeypatch):
    """PUT /rules stores the new set, then storage fails before the generation is re-resolved.
    The retried import finds every rule already stored; it must still apply them, not leave the
    current generation answering from the old rules until the next sync."""
    demo = {r["software"]: r for r in json.loads(DEMO_RULES.read_bytes())["rules"]}
    # Huntress without Contoso, and no SentinelOne
    rules = {"rules": [{**demo["Huntress"], "exclude_clients": [1]}, demo["Microsoft 365 Apps"]]}
    body = json.dumps(rules).encode()
    _fail_once(monkeypatch)
    assert_storage_problem(call("rules", "PUT", body, {"area": "rules"}))
    assert call("rules", "PUT", body, {"area": "rules"}).status_code == 200
    huntress = json.loads(call("targets", software="Huntress").get_body())
    assert 1 not in [t["client_id"] for t in huntress["targets"]]
    assert call("targets", software="SentinelOne").status_code == 404


# -- a rule edit on a later day, same generation ----------------------------------------------------

# Huntress without Contoso (1), Tailspin (4: its contract starts in 14 days) and Wide World
# Importers (6): Fabrikam (2) only, whose contract ends in 20 days (7 grace days), so 28 days on
# nobody.
FABRIKAM_ONLY = {
    "software": "FabOnly",
    "contract_types": ["Managed Security"],
    "grace_days": 7,
    "exclude_clients": [1, 4, 6],
}


def test_a_rule_re_resolved_on_a_later_day_changes_its_etag(demo_synced):
    """A rule PUT re-resolves with the day of the PUT. When the generation is older (syncs held or
    failing, or just past midnight) the same rule can resolve to other targets: the ETag must
    change with them, or ImmyBot's If-None-Match gets a 304 and keeps the old targets."""
    store = get_store()
    today = date.today()
    put_rule(store, "FabOnly", json.dumps(FABRIKAM_ONLY).encode(), today)
    query = TargetsQuery("software", "FabOnly")
    before = answer_targets(store, query)
    assert [t["client_id"] for t in json.loads(before.body or b"")["targets"]] == [2]
    put_rule(store, "FabOnly", json.dumps(FABRIKAM_ONLY).encode(), today + timedelta(days=28))
    after = answer_targets(store, query, before.etag)
    assert after.body is not None, "304 for an answer whose targets changed"
    assert after.etag != before.etag


def test_a_rule_re_resolved_to_no_targets_serves_no_stale_targets(demo_synced):
    store = get_store()
    today = date.today()
    put_rule(store, "FabOnly", json.dumps(FABRIKAM_ONLY).encode(), today)
    put_rule(store, "FabOnly", json.dumps(FABRIKAM_ONLY).encode(), today + timedelta(days=28))
    body = json.loads(answer_targets(store, TargetsQuery("software", "FabOnly")).body or b"")
    assert body["counts"]["targets"] == 0
    assert body["targets"] == []


# -- hostile spellings and the answer cache ---------------------------------------------------------


def test_spellings_of_one_software_do_not_evict_other_answers(demo_synced, monkeypatch):
    """The answer cache holds whole answers by the query as written: 2^8 case spellings of
    "huntress" (plus width and whitespace variants) each take a full answer's room, so one caller
    can push every other answer out. Spellings of one rule must share one entry (the echo of the
    query is still the caller's)."""
    store = get_store()
    sentinel = answer_targets(store, TargetsQuery("software", "SentinelOne")).body
    assert sentinel is not None
    bound = 4 * len(sentinel) + 4 * 4096
    monkeypatch.setattr(read_cache, "answers", AnswerCache(max_bytes=bound))
    answer_targets(store, TargetsQuery("software", "SentinelOne"))
    spellings = [
        "".join(c.upper() if n >> i & 1 else c for i, c in enumerate("huntress")) for n in range(40)
    ]
    answers = {s: answer_targets(store, TargetsQuery("software", s)) for s in spellings}
    assert len(read_cache.answers) <= 2
    for spelling, answer in answers.items():
        assert json.loads(answer.body or b"")["query"] == {"software": spelling}
    # SentinelOne's answer is still cached: no Table round trip for it.
    monkeypatch.setattr(
        "shared.api.targets._software_answer",
        lambda *a, **k: pytest.fail("SentinelOne was evicted by spellings of Huntress"),
    )
    answer_targets(store, TargetsQuery("software", "SentinelOne"))


# -- caches and generations -------------------------------------------------------------------------


@pytest.fixture
def frozen(monkeypatch) -> list[float]:
    """The pointer and manifest cache on a clock that only the test moves."""
    now = [1000.0]
    monkeypatch.setattr(read_cache, "current", CurrentCache(5.0, lambda: now[0]))
    return now


def other_instance(azurite: Azurite) -> Store:
    """Another instance on the same tables: another store identity (by host name), so its writes
    do not move this process's write counter, as another instance's would not."""
    from azure.data.tables import TableServiceClient

    service = TableServiceClient.from_connection_string(
        azurite.connection_string.replace("127.0.0.1", "localhost")
    )
    other = Store(service, prefix=get_settings().tables_prefix)
    assert other.identity != get_store().identity
    return other


def test_a_cached_pointer_to_a_generation_dropped_elsewhere_is_not_a_503(
    demo_synced, frozen, azurite
):
    """Another instance swaps twice within the TTL and its clean-up drops the generation this
    instance's cached pointer names. A read that finds its generation gone must read the pointer
    again, not answer 503 until the TTL runs out."""
    store = get_store()
    old = store.current()
    assert old is not None
    answer_targets(store, TargetsQuery("software", "Huntress"))  # caches the pointer
    other = other_instance(azurite)
    # Every client changes, so the new generations share no client's rows with the old one, and
    # the clean-up may drop it.
    changed = demo_synced.data.copy()
    for client in changed.clients:
        client["name"] = f"{client['name']} (renamed)"
    demo_synced.set_data(changed)
    assert asyncio.run(run_sync(store=other)).outcome is Outcome.SUCCEEDED
    assert asyncio.run(run_sync(store=other)).outcome is Outcome.SUCCEEDED
    assert old.generation not in other.generations()
    newest = other.current()
    assert newest is not None
    answer = answer_targets(store, TargetsQuery("software", "SentinelOne"))
    assert json.loads(answer.body or b"")["generation"] == newest.generation


@pytest.mark.parametrize("computers", [False, True], ids=["plain", "expand-computers"])
def test_a_rule_edit_elsewhere_never_serves_empty_targets(demo_synced, frozen, azurite, computers):
    """Another instance edits SentinelOne: new partitions, a new manifest, the old partitions
    deleted. Within the TTL this instance's cached manifest still names the deleted partition:
    reading it finds nothing, and the answer said "no targets" (counts 4, targets []): the answer
    ImmyBot would uninstall everywhere on. Expected: the new answer (or at worst the old one)."""
    store = get_store()
    answer_targets(store, TargetsQuery("software", "Huntress"))  # caches pointer and manifest
    rules = {r["software"]: r for r in json.loads(DEMO_RULES.read_bytes())["rules"]}
    edited = {**rules["SentinelOne"], "exclude_clients": [7]}
    put_rule(other_instance(azurite), "SentinelOne", json.dumps(edited).encode(), date.today())
    query = TargetsQuery("software", "SentinelOne", computers)
    body = json.loads(answer_targets(store, query).body or b"")
    assert body["targets"], body["counts"]
    assert len(body["targets"]) == body["counts"]["targets"]


def test_concurrent_callers_during_a_swap_get_consistent_answers(demo_synced):
    """20 callers while a sync swaps: every answer names one generation in body and ETag."""
    store = get_store()
    results: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(21)

    def caller() -> None:
        start.wait()
        try:
            for _ in range(5):
                answer = answer_targets(store, TargetsQuery("software", "Huntress"))
                results.append((answer.etag, answer.body or b""))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=caller) for _ in range(20)]
    for thread in threads:
        thread.start()
    start.wait()
    assert asyncio.run(run_sync()).outcome is Outcome.SUCCEEDED
    for thread in threads:
        thread.join()
    assert not errors
    for etag, body in results:
        assert etag.strip('"').split(".")[0] == json.loads(body)["generation"]


def test_a_rule_edited_while_a_sync_runs_is_in_the_generation_it_swaps_to(demo_synced):
    """A rule PUT lands after the sync read the rules and before it swaps: the edit went to the
    old generation, and the new one must not bring back the old rule."""
    store = get_store()
    rules = {r["software"]: r for r in json.loads(DEMO_RULES.read_bytes())["rules"]}
    edited = {**rules["Huntress"], "exclude_clients": [1]}

    def edit(generation: str) -> None:
        put_rule(store, "Huntress", json.dumps(edited).encode(), date.today())

    assert asyncio.run(run_sync(before_swap=edit)).outcome is Outcome.SUCCEEDED
    body = json.loads(answer_targets(store, TargetsQuery("software", "Huntress")).body or b"")
    assert body["generation"] == store.current().generation  # type: ignore[union-attr]
    assert 1 not in [t["client_id"] for t in body["targets"]]
