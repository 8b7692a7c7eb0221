"""`make run`'s server: the real handlers behind loopback HTTP, with the host's key rules."""

from __future__ import annotations

import asyncio
import re
import threading
from pathlib import Path
from urllib.parse import quote

import azure.functions as func
import httpx
import pytest
from azure.storage.queue import QueueServiceClient

from sandbox.devhost import DEV_WEBHOOK_SECRET, DevHost, Route, function_key, main, route_value
from sandbox.queues import AZURITE_QUEUE_API
from sandbox.worker import Worker
from shared.core.events import EVENTS_QUEUE
from sync_timer import SYNC_QUEUE
from tests.conftest import azurite_service

pytestmark = pytest.mark.integration


def test_targets_call_answers_with_the_demo_targets(devhost):
    url, keys = devhost
    response = httpx.get(
        f"{url}/api/targets",
        params={"software": "Huntress"},
        headers={"x-functions-key": keys["targets"]},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert [t["client_name"] for t in response.json()["targets"]] == [
        "Contoso Ltd",
        "Fabrikam, Inc.",
        "Wide World Importers",
    ]


def test_keys_are_checked_like_the_host_does(devhost):
    url, keys = devhost
    target = f"{url}/api/targets"
    huntress = {"software": "Huntress"}
    assert httpx.get(target, params=huntress).status_code == 401
    other_function = {**huntress, "code": keys["rules"]}
    assert httpx.get(target, params=other_function).status_code == 401
    assert httpx.get(target, params={**huntress, "code": keys["master"]}).status_code == 200
    rules = f"{url}/api/rules/Huntress"
    assert (
        httpx.put(rules, headers={"x-functions-key": keys["targets"]}, content=b"{}").status_code
        == 401
    )
    sync = f"{url}/api/sync"
    # An admin route opens to the master key alone, so no key of its own is printed.
    assert {"sync_now", "sync_approve", "setup_check"}.isdisjoint(keys)
    refused = httpx.post(sync, headers={"x-functions-key": function_key("sync_now")})
    assert refused.status_code == 401
    assert httpx.post(sync, headers={"x-functions-key": keys["master"]}).status_code == 202


def test_the_demo_takes_halopsa_events_with_its_own_secret(devhost):
    url, keys = devhost
    assert "halo_webhook" not in keys  # anonymous at the host: no function key opens it
    event = {"event": "Client Updated", "object_id": 1}
    events = f"{url}/api/halo/events"
    assert httpx.post(events, json=event).status_code == 401
    answer = httpx.post(
        events, json=event, headers={"Authorization": f"Bearer {DEV_WEBHOOK_SECRET}"}
    )
    assert answer.status_code == 202 and answer.json()["queued"] == 1


def children(pid: int) -> list[int]:
    """The PIDs of a process's children (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The command may hold spaces and parentheses: the fields after its last ")".
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_the_tests_devhost_keeps_its_storage_in_the_workers_azurite(
    devhost_output, azurite, azurite_queues
):
    # tests/conftest.py starts it with --tables and --queues: it starts no Azurite of its own,
    # and writes every table and queue under its prefix, none under a bare name.
    assert devhost_output.prefix and devhost_output.pid
    assert children(devhost_output.pid) == []
    prefix = devhost_output.prefix
    event = {"event": "Client Updated", "object_id": 1}
    secret = {"Authorization": f"Bearer {DEV_WEBHOOK_SECRET}"}
    assert httpx.post(
        f"{devhost_output.url}/api/halo/events", json=event, headers=secret
    ).is_success
    service = azurite_service(azurite)
    tables = {table.name for table in service.list_tables()}
    own = {name.removeprefix(prefix) for name in tables if name.startswith(prefix)}
    assert {"Rules", "SyncState"} <= own
    assert any(name.startswith("snap") for name in own), own
    assert not own & tables
    queue_service = QueueServiceClient.from_connection_string(
        azurite_queues.connection_string, api_version=AZURITE_QUEUE_API
    )
    queues = {queue.name for queue in queue_service.list_queues()}
    own_queues = {name.removeprefix(prefix) for name in queues if name.startswith(prefix)}
    assert {EVENTS_QUEUE, SYNC_QUEUE} <= own_queues
    assert not own_queues & queues


@pytest.mark.parametrize(
    "argv",
    [
        ["--queues-prefix", "Upper"],
        ["--tables-prefix", "has-hyphen"],
        ["--existing", "--tables", "UseDevelopmentStorage=true"],
    ],
)
def test_storage_flags_it_cannot_honour_are_refused_before_anything_starts(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_problem_answers_pass_through(devhost):
    url, keys = devhost
    response = httpx.get(f"{url}/api/targets", params={"software": "Nope", "code": keys["targets"]})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["known"] == ["Huntress", "Microsoft 365 Apps", "SentinelOne"]


def test_a_repeated_query_name_is_refused_not_answered_for_one_of_its_values(devhost):
    # It answered for Huntress, the last value.
    url, keys = devhost
    response = httpx.get(
        f"{url}/api/targets?software=SentinelOne&software=Huntress",
        headers={"x-functions-key": keys["targets"]},
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["parameters"] == ["software"]


def test_a_long_unicode_rule_name_is_answered_not_dropped(devhost):
    # The devhost handed the handler the percent-encoded name, whose key raised,
    # and the exception closed the connection unanswered.
    url, keys = devhost
    name = quote("é" * 600)
    response = httpx.delete(f"{url}/api/rules/{name}", headers={"x-functions-key": keys["rules"]})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")


def test_route_values_arrive_decoded_as_the_host_hands_them_over(devhost):
    url, keys = devhost
    response = httpx.get(
        f"{url}/api/rules/{quote('Huntress')}%20", headers={"x-functions-key": keys["rules"]}
    )
    assert response.status_code == 200  # "Huntress " names Huntress
    assert route_value("a%20b%2Fc%2fd%C3%A9") == "a b%2Fc%2Fdé"


def test_undeclared_methods_are_405_with_the_documented_allow(devhost):
    url, keys = devhost
    for method, path, allow in (
        ("TRACE", "/api/catalog", "GET"),
        ("PATCH", "/api/mappings", "GET"),
        ("OPTIONS", "/api/rules", "GET, PUT"),
    ):
        response = httpx.request(
            method, f"{url}{path}", headers={"x-functions-key": keys["master"]}
        )
        assert response.status_code == 405, (method, path)
        assert response.headers["allow"] == allow


@pytest.mark.parametrize(
    ("auth", "headers", "target"),
    [
        ("FUNCTION", {}, "/api/guarded"),
        ("FUNCTION", {"x-functions-key": "wrong"}, "/api/guarded"),
        ("FUNCTION", {}, "/api/guarded?code=wrong"),
        ("ADMIN", {"x-functions-key": function_key("guarded")}, "/api/guarded"),
    ],
)
def test_a_missing_or_wrong_key_is_an_empty_401_as_the_host_answers(auth, headers, target):
    # The Functions host answers an unauthorised call with ASP.NET Core's UnauthorizedResult:
    # the status alone, no body and no Content-Type (the devhost answered with text).
    ran: list[object] = []
    host = DevHost([])
    host.routes.append(
        Route("guarded", re.compile("^guarded$"), frozenset({"GET"}), auth, ran.append, ())
    )
    try:
        status, out, body = host.dispatch("GET", target, headers, b"")
    finally:
        host.worker.close()
    assert (status, body, ran) == (401, b"", [])
    assert "Content-Type" not in out


def test_an_exception_in_a_handler_is_a_500_not_a_closed_connection():
    def broken(request):
        raise RuntimeError("boom")

    host = DevHost([])
    host.routes.append(
        Route("broken", re.compile("^broken$"), frozenset({"GET"}), "ANONYMOUS", broken, ())
    )
    status, _, body = host.dispatch("GET", "/api/broken", {}, b"")
    assert status == 500
    assert b"boom" not in body


def test_async_handlers_share_one_loop_and_plain_ones_run_in_the_pool_as_in_the_worker():
    loops: list[object] = []
    threads: list[str] = []

    async def on_loop(request):
        loops.append(asyncio.get_running_loop())
        return func.HttpResponse("ok")

    def in_pool(request):
        threads.append(threading.current_thread().name)
        return func.HttpResponse("ok")

    worker = Worker(threads=3)
    host = DevHost([], worker)
    try:
        for name, handler in (("a", on_loop), ("s", in_pool)):
            host.routes.append(
                Route(name, re.compile(f"^{name}$"), frozenset({"GET"}), "ANONYMOUS", handler, ())
            )
        for _ in range(3):
            assert host.dispatch("GET", "/api/a", {}, b"")[0] == 200
            assert host.dispatch("GET", "/api/s", {}, b"")[0] == 200
        # One loop for every async invocation, so loop-bound clients live across requests.
        assert len({id(loop) for loop in loops}) == 1 and loops[0] is worker.loop
        assert all(name.startswith("worker") for name in threads)
    finally:
        worker.close()
    assert worker.loop.is_closed()
