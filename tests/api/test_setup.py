"""The setup check (`GET /api/setup/check`, `make check`) against the sandboxes and Azurite.

Every refusal the sandboxes can play (a HaloPSA permission, an agent in no team, an ImmyBot right,
bad credentials, unreachable storage, a missing setting) must come back as a named line with its
fix, never as an exception; and the check must never write to HaloPSA or ImmyBot.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date

import pytest

from sandbox.devhost import MASTER_KEY, DevHost, function_key
from sandbox.halo import Faults, HaloSandbox
from sandbox.halo_data import demo_data
from sandbox.halo_report import as_tables_hold_it
from sandbox.immybot import ImmyBotSandbox, ImmyFaults
from sandbox.immybot_data import HALO_LINK_ID, add_halo_link, immy_data_for
from sandbox.processes import ROOT
from shared.api import setup as setup_check
from shared.api.setup import request_host, run_checks, tab_url, text_lines
from shared.api.setup_models import CheckResult, CheckStatus, SetupReport
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings
from tests.conftest import immy_settings
from tests.registry import registered

pytestmark = pytest.mark.integration

# The check names, in the order the answer gives them (ASSET_SYNC=plan, ImmyBot configured).
NAMES = [
    "settings",
    "halo.token",
    "halo.read:customers",
    "halo.read:contracts",
    "halo.read:items",
    "halo.read:invoices",
    "halo.read:tickets",
    "halo.clients_visible",
    "halo.edit:reporting",
    "halo.report_sample",
    "halo.read:assets",
    "halo.edit:assets",
    "immybot.token",
    "immybot.tenants",
    "immybot.computers",
    "immybot.provider_links",
    "immybot.tags",
    "immybot.inventory",
    "storage",
]
# The agent permission each HaloPSA scope's fix names (docs/halopsa-setup.md, step 1).
AGENT_RIGHT = {
    "read:customers": "Clients Access Level",
    "read:contracts": "Client Contracts Access Level",
    "read:items": "Items Access Level",
    "read:invoices": "Invoices Access Level",
    "read:tickets": "Tickets Access Level",
    "read:assets": "Assets Access Level",
}
EVERY_SCOPE = [*AGENT_RIGHT, "edit:reporting"]
ASSETS = {
    "ASSET_SYNC": "plan",
    "ASSET_TYPE_ID": "1",
    "ASSET_NAME_FIELD": "2",
    "ASSET_ID_FIELD": "3",
    "ASSET_MARKER_FIELD": "4",
}


@pytest.fixture
def sandboxes(configure, halo_sandbox) -> Iterator[tuple[HaloSandbox, ImmyBotSandbox]]:
    """HaloPSA and ImmyBot sandboxes with a HaloPSA provider link, and the settings for them."""
    # Data whose REST answers HaloPSA's tables can hold, so the report sample agrees too.
    data = as_tables_hold_it(demo_data(date.today()))
    halo = halo_sandbox(data)
    immy_data = add_halo_link(immy_data_for(data), {1: 2})
    with ImmyBotSandbox(immy_data) as immy:
        forget_applications()
        configure(
            halo.url,
            HALO_READ_MODE="auto",
            IMMY_HALO_LINK_ID=str(HALO_LINK_ID),
            **immy_settings(immy),
            **ASSETS,
        )
        yield halo, immy
    forget_applications()


def by_name(result: SetupReport) -> dict[str, CheckResult]:
    return {line.name: line for line in result.checks}


def not_passing(result: SetupReport) -> list[str]:
    return [line.name for line in result.checks if line.status in ("missing", "failed")]


# -- all green ----------------------------------------------------------------------------------


def test_everything_passes_on_the_sandboxes_and_nothing_is_written(sandboxes):
    halo, immy = sandboxes
    assets_before = len(halo.assets.records())
    result = asyncio.run(run_checks())
    assert [line.name for line in result.checks] == NAMES
    assert result.ok, text_lines(result)
    assert not_passing(result) == []
    lines = by_name(result)
    assert lines["halo.clients_visible"].detail.startswith("the agent sees 8 client(s)")
    sample = lines["halo.report_sample"]
    assert sample.status is CheckStatus.OK and not sample.required  # auto: reports optional
    assert sample.detail.startswith(
        "a report read agrees with a REST sample (8 clients, 11 sites, 12"
    )
    assert lines["halo.edit:assets"].status is CheckStatus.SKIPPED  # plan: no write to prove
    assert lines["immybot.provider_links"].detail == f"provider link {HALO_LINK_ID}: 1 client(s)"
    assert lines["storage"].status is CheckStatus.OK
    # One small request per permission, then the report sample (a report read: bounds and seven
    # tables, clients' Entra tenants among them; REST: a page each of clients, sites, contracts,
    # items and invoices).
    requests = halo.stats()["requests"]
    assert requests == {
        "auth/token": 1,
        "Client": 1 + 1,
        "Site": 1,
        "ClientContract": 1 + 1,
        "Item": 1 + 1,
        "RecurringInvoice": 1 + 1,
        "Tickets": 1,
        "Report": 1 + 1 + 7,
        "Asset": 1,
    }
    assert len(halo.assets.records()) == assets_before
    assert immy.tag_writes == []
    assert immy.stats()["requests"]["computers"] == 1


def test_rest_read_mode_runs_no_report(sandboxes, monkeypatch):
    halo, _ = sandboxes
    monkeypatch.setenv("HALO_READ_MODE", "rest")
    result = asyncio.run(run_checks())
    assert result.ok
    assert by_name(result)["halo.edit:reporting"].status is CheckStatus.SKIPPED
    assert by_name(result)["halo.report_sample"].detail.startswith("HALO_READ_MODE=rest")
    assert "Report" not in halo.stats()["requests"]


def test_a_report_sample_that_disagrees_is_named_and_optional_in_auto(
    configure, halo_sandbox, monkeypatch
):
    # The demo as REST answers it: Woodgrove Bank's line carries a code no SQL column holds.
    halo = halo_sandbox(demo_data(date.today()))
    configure(halo.url, HALO_READ_MODE="auto")
    line = by_name(asyncio.run(run_checks()))["halo.report_sample"]
    assert line.status is CheckStatus.FAILED and not line.required
    assert "invoice_line 701 item_internal_reference: report '', REST 'S1-COMPLETE'" in line.detail
    assert line.fix.startswith("nothing to do")
    monkeypatch.setenv("HALO_READ_MODE", "report")
    result = asyncio.run(run_checks())
    line = by_name(result)["halo.report_sample"]
    assert line.required and not result.ok  # report mode would fail every sync


def test_a_slow_report_sample_costs_its_own_line_not_every_halopsa_line(sandboxes, monkeypatch):
    from shared.api import setup_halo

    halo, _ = sandboxes
    monkeypatch.setattr(setup_halo, "SAMPLE_SECONDS", 0.2)
    halo.set_faults(Faults(latency_ms=150))  # each report and REST page takes 0.15 s
    lines = by_name(asyncio.run(run_checks()))
    assert lines["halo.report_sample"].status is CheckStatus.FAILED
    assert "took longer than 0.2 s" in lines["halo.report_sample"].detail
    assert lines["halo.read:tickets"].status is CheckStatus.OK  # the other lines still answer


def test_a_report_sample_that_loses_rows_is_named(sandboxes):
    halo, _ = sandboxes
    halo.set_faults(Faults(report={"lose_rows": {"contracts": 1}}))
    line = by_name(asyncio.run(run_checks()))["halo.report_sample"]
    assert line.status is CheckStatus.FAILED and "contracts" in line.detail


# -- HaloPSA refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize("scope", EVERY_SCOPE)
def test_each_denied_halo_scope_is_named_with_its_fix(sandboxes, monkeypatch, scope):
    halo, _ = sandboxes
    halo.set_faults(Faults(deny_scopes=[scope]))
    # The token asks for every permission but the denied one: the fix must say to add it.
    words = [s for s in [*EVERY_SCOPE, "read:reporting"] if s != scope]
    monkeypatch.setenv("HALO_SCOPE", " ".join(words))
    monkeypatch.setenv("HALO_READ_MODE", "report")  # so reporting is required too
    result = asyncio.run(run_checks())
    name = f"halo.{scope}"
    assert not_passing(result) == [name]
    assert not result.ok
    line = by_name(result)[name]
    assert line.status is CheckStatus.MISSING and line.required
    assert "HTTP 403" in line.detail
    tick = line.fix.split(" on the API application")[0]
    assert tick.startswith("tick ") and scope in tick
    assert f"add {scope} to HALO_SCOPE" in line.fix
    if scope in AGENT_RIGHT:
        assert AGENT_RIGHT[scope] in line.fix
    else:
        assert "read:reporting and edit:reporting" in line.fix


def test_halo_scope_all_is_said_to_ask_for_the_permission(sandboxes):
    halo, _ = sandboxes
    halo.set_faults(Faults(deny_scopes=["read:tickets"]))
    line = by_name(asyncio.run(run_checks()))["halo.read:tickets"]
    assert "HALO_SCOPE is 'all', which asks for it" in line.fix
    assert "Tickets Access Level: Read Only" in line.fix


def test_reporting_denied_in_auto_mode_is_named_but_optional(sandboxes):
    halo, _ = sandboxes
    halo.set_faults(Faults(deny_scopes=["edit:reporting"]))
    result = asyncio.run(run_checks())
    line = by_name(result)["halo.edit:reporting"]
    assert line.status is CheckStatus.MISSING and not line.required
    assert "syncs read through REST" in line.fix
    assert by_name(result)["halo.report_sample"].status is CheckStatus.SKIPPED
    assert result.ok  # auto falls back to REST: nothing required is missing
    printed = [t for t in text_lines(result) if "halo.edit:reporting" in t]
    assert printed[0].endswith("(optional with these settings)")


def test_edit_assets_in_apply_mode_is_unproven_not_written(sandboxes, monkeypatch):
    halo, _ = sandboxes
    halo.set_faults(Faults(deny_scopes=["edit:assets"]))
    monkeypatch.setenv("ASSET_SYNC", "apply")
    result = asyncio.run(run_checks())
    line = by_name(result)["halo.edit:assets"]
    assert line.status is CheckStatus.SKIPPED
    assert line.detail.startswith("unproven")
    assert "edit:assets" in line.fix and "Read and Modify" in line.fix
    assert halo.stats()["requests"]["Asset"] == 1  # the read only: no POST reached HaloPSA
    assert halo.stats()["statuses"].get("403") is None


def test_an_agent_in_no_team_is_named(sandboxes):
    halo, _ = sandboxes
    halo.set_faults(Faults(no_clients=True))
    result = asyncio.run(run_checks())
    # SQL reports see every client whatever the agent's teams; REST sees none: the sample differs.
    assert not_passing(result) == ["halo.clients_visible", "halo.report_sample"]
    assert "REST present" not in by_name(result)["halo.report_sample"].detail
    line = by_name(result)["halo.clients_visible"]
    assert line.status is CheckStatus.MISSING
    assert "in no team" in line.detail
    assert "team(s) that see all tickets" in line.fix
    assert not result.ok


def test_wrong_halo_secret_names_the_credentials_and_skips_the_rest(sandboxes, monkeypatch):
    monkeypatch.setenv("HALO_CLIENT_SECRET", "not-the-sandbox-secret")
    result = asyncio.run(run_checks())
    lines = by_name(result)
    assert lines["halo.token"].status is CheckStatus.FAILED
    assert "invalid_client" in lines["halo.token"].detail
    assert "HALO_CLIENT_ID and HALO_CLIENT_SECRET" in lines["halo.token"].fix
    assert "not-the-sandbox-secret" not in json.dumps(result.model_dump())  # never echoed
    assert all(lines[n].status is CheckStatus.SKIPPED for n in NAMES[2:12])
    assert lines["immybot.tenants"].status is CheckStatus.OK  # the other groups still ran
    assert lines["storage"].status is CheckStatus.OK


def test_missing_halo_tenant_is_named(configure, halo_sandbox):
    halo = halo_sandbox(demo_data(date.today()), tenant="acme")
    configure(halo.url)
    line = by_name(asyncio.run(run_checks()))["halo.token"]
    assert line.status is CheckStatus.FAILED
    assert line.fix.startswith("HALO_TENANT is not set")


# -- ImmyBot refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        ("tenants", "immybot.tenants"),
        ("computers", "immybot.computers"),
        ("provider_links", "immybot.provider_links"),
        ("tags", "immybot.tags"),
    ],
)
def test_a_denied_immybot_right_is_named(sandboxes, endpoint, name):
    _, immy = sandboxes
    immy.set_faults(ImmyFaults(deny=[endpoint]))
    result = asyncio.run(run_checks())
    assert not_passing(result) == [name]
    line = by_name(result)[name]
    assert line.status is CheckStatus.MISSING
    assert "HTTP 403" in line.detail
    assert "ImmyBot user of the app registration needs that right" in line.fix
    assert not result.ok


def test_a_denied_inventory_search_is_named_but_not_required(sandboxes):
    _, immy = sandboxes
    immy.set_faults(ImmyFaults(deny=["inventory_search"]))
    result = asyncio.run(run_checks())
    line = by_name(result)["immybot.inventory"]
    assert (line.status, line.required) == (CheckStatus.MISSING, False)
    assert "HTTP 403" in line.detail
    assert line.fix.startswith("searching computers' inventory: the ImmyBot user")
    assert result.ok  # a sync still serves; its installed counts say unknown


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("IMMY_CLIENT_SECRET", "wrong", "IMMY_CLIENT_SECRET"),
        ("IMMY_CLIENT_ID", "someone-else", "IMMY_CLIENT_ID"),
        ("IMMY_TENANT_ID", "99999999-2222-3333-4444-555555555555", "IMMY_TENANT_ID"),
    ],
)
def test_a_refused_immybot_token_names_the_setting(sandboxes, monkeypatch, setting, value, named):
    monkeypatch.setenv(setting, value)
    result = asyncio.run(run_checks())
    lines = by_name(result)
    assert lines["immybot.token"].status is CheckStatus.FAILED
    assert lines["immybot.token"].fix.startswith(named)
    assert not_passing(result) == ["immybot.token"]
    assert lines["immybot.tags"].status is CheckStatus.SKIPPED


def test_immybot_not_configured_is_one_skipped_line(configure, halo_sandbox):
    configure(halo_sandbox(demo_data(date.today())).url)
    result = asyncio.run(run_checks())
    assert result.ok
    (line,) = [line for line in result.checks if line.name.startswith("immybot")]
    assert (line.name, line.status) == ("immybot", CheckStatus.SKIPPED)


# -- storage and settings -----------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["closed port", "malformed"])
def test_unreachable_storage_is_named_not_a_crash(sandboxes, monkeypatch, azurite, where):
    if where == "closed port":
        port = azurite.connection_string.split("127.0.0.1:")[1].split("/")[0]
        value = azurite.connection_string.replace(f":{port}/", f":{closed_port()}/")
    else:
        value = "this is not a connection string"
    monkeypatch.setenv("TABLES_CONNECTION_STRING", value)
    result = asyncio.run(run_checks())
    assert not_passing(result) == ["storage"]
    line = by_name(result)["storage"]
    assert line.status is CheckStatus.FAILED
    assert "TABLES_CONNECTION_STRING" in line.fix
    assert value not in line.detail


def test_a_missing_setting_is_a_named_line(sandboxes, monkeypatch):
    monkeypatch.delenv("HALO_CLIENT_ID")
    monkeypatch.setenv("IMMY_HALO_LINK_ID", "-4")
    result = asyncio.run(run_checks())
    lines = by_name(result)
    assert lines["settings.HALO_CLIENT_ID"].status is CheckStatus.MISSING
    assert lines["settings.HALO_CLIENT_ID"].detail == "HALO_CLIENT_ID is missing"
    assert lines["settings.IMMY_HALO_LINK_ID"].status is CheckStatus.FAILED
    assert "-4" not in lines["settings.IMMY_HALO_LINK_ID"].detail  # named, never its value
    assert [lines[g].status for g in ("halo", "immybot", "storage")] == [CheckStatus.SKIPPED] * 3
    assert not result.ok


def test_a_check_that_breaks_is_one_failed_line(sandboxes, monkeypatch):
    async def broken(settings):
        raise KeyError("a bug")

    monkeypatch.setattr(setup_check, "immy_checks", broken)
    result = asyncio.run(run_checks())
    assert not_passing(result) == ["immybot"]
    assert by_name(result)["immybot"].detail == "the check itself failed: KeyError"


# -- the route and the command ------------------------------------------------------------------


@pytest.fixture
def devhost(sandboxes) -> Iterator[DevHost]:
    host = DevHost(registered().values())
    yield host
    host.worker.close()


def test_route_answers_the_report_with_the_master_key_only(devhost, monkeypatch):
    path = "/api/setup/check"
    host = {"host": "127.0.0.1:7071"}
    status, headers, body = devhost.dispatch(
        "GET", path, {**host, "x-functions-key": MASTER_KEY}, b""
    )
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/json")
    result = SetupReport.model_validate_json(body)
    assert [line.name for line in result.checks] == NAMES and result.ok
    assert result.tab_url == "http://127.0.0.1:7071/api/technician-tab/ticket/$FAULTID"
    for key in (None, function_key("setup_check"), function_key("targets"), "nonsense"):
        sent = {**host, **({"x-functions-key": key} if key else {})}
        assert devhost.dispatch("GET", path, sent, b"")[0] == 401
    assert devhost.dispatch("POST", path, {"x-functions-key": MASTER_KEY}, b"")[0] == 405

    # A missing setting is a line of a 200 answer, not a 500 or a 503.
    monkeypatch.delenv("HALO_CLIENT_ID")
    get_settings.cache_clear()
    status, _, body = devhost.dispatch("GET", path, {"x-functions-key": MASTER_KEY}, b"")
    assert status == 200
    assert "settings.HALO_CLIENT_ID" in {
        c.name for c in SetupReport.model_validate_json(body).checks
    }


def run_cli() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shared.api.setup"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_command_exits_0_when_all_pass_and_1_when_not(sandboxes):
    halo, _ = sandboxes
    passed = run_cli()
    assert passed.returncode == 0, passed.stdout + passed.stderr
    printed = passed.stdout.splitlines()
    assert [line.split()[1] for line in printed[: len(NAMES)]] == NAMES
    assert all(line.split()[0] in ("ok", "skipped") for line in printed[: len(NAMES)])
    assert "Custom Tab URL: https://<app>.azurewebsites.net/api/technician-tab/" in passed.stdout
    assert printed[-1] == "setup check: ok"

    halo.set_faults(Faults(deny_scopes=["read:invoices"]))
    refused = run_cli()
    assert refused.returncode == 1
    (line,) = [t for t in refused.stdout.splitlines() if t.startswith("missing")]
    assert line.split()[1] == "halo.read:invoices" and "-> fix: tick read:invoices" in line


# -- text and URL -------------------------------------------------------------------------------


def test_text_lines_are_aligned():
    result = SetupReport(
        ok=False,
        checks=[
            CheckResult(name="settings", status=CheckStatus.OK, detail="fine"),
            CheckResult(
                name="halo.read:tickets", status=CheckStatus.MISSING, detail="403", fix="tick"
            ),
        ],
        tab_url=tab_url(None),
        tab_url_note="note",
    )
    first, second, *rest = text_lines(result)
    assert first == "ok       settings           fine"
    assert second == "missing  halo.read:tickets  403  -> fix: tick"
    assert rest[-1] == "setup check: NOT ok (see missing/failed above)"


@pytest.mark.parametrize(
    ("url", "header", "expected"),
    [
        ("https://app.azurewebsites.net/api/setup/check", None, "https://app.azurewebsites.net"),
        ("http://127.0.0.1/api/setup/check", "127.0.0.1:7071", "http://127.0.0.1:7071"),
        ("http://127.0.0.1/api/setup/check", "bad host\r\nx: y", "http://127.0.0.1"),
        ("https://Halo.Example.com/api", "[::1]:8080", "http://[::1]:8080"),
        ("", "a" * 300, "https://<app>.azurewebsites.net"),
    ],
)
def test_tab_url_comes_from_the_request_host(url, header, expected):
    assert tab_url(request_host(url, header)) == expected + "/api/technician-tab/ticket/$FAULTID"


def test_the_command_uses_website_hostname_without_a_request(sandboxes, monkeypatch):
    monkeypatch.setenv("WEBSITE_HOSTNAME", "halo-immy-abc.azurewebsites.net")
    result = asyncio.run(run_checks())
    assert result.tab_url.startswith("https://halo-immy-abc.azurewebsites.net/api/")


def test_a_tag_prefix_with_a_hidden_character_is_a_named_line():
    from shared.api.setup import settings_checks
    from shared.settings import load_settings

    def load():
        return load_settings(
            halo_base_url="https://msp.halopsa.test",
            halo_client_id="id",
            halo_client_secret="secret",
            tables_connection_string="UseDevelopmentStorage=true",
            immy_tag_prefix="\u200bHalo: ",
        )

    settings, (line,) = settings_checks(load)
    assert settings is not None  # the rest of the checks still run
    assert (line.name, line.status, line.required) == ("settings.IMMY_TAG_PREFIX", "failed", True)
    assert "U+200B" in line.detail
