"""The tab's billed / targeted / installed heading, its installed / missing / unknown cells, its
ImmyBot links, its deadline and its Table reads.

Expectations come from the demo data sets (sandbox/halo_data.py, sandbox/immybot_data.py): ticket 1
is Dana Whitfield's at Contoso Ltd (ImmyBot tenant 2, computers 3-7; hers is 3, CONTOSO-LT01), and
`detected_software()` gives computer 3 Huntress only, 4 SentinelOne only, 5 both, 6 Huntress only,
and 7 nothing at all (never inventoried). Contoso is billed 25 SentinelOne seats (a fixed line) and
has Huntress through its Managed Security contract.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient

from sandbox.halo_data import HaloDataSet, demo_data
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.rules import import_rules
from shared.core.coverage import Wanted
from shared.core.detection import matches
from shared.core.installed import SoftwareSeen, StoredComputer
from shared.core.reach import NOT_DEPLOYABLE, OTHER_SITE
from shared.core.site_links import NO_ASSET, NO_LINKS, NOT_COVERED, SiteLink
from shared.core.targets import Quantities, SiteRef, Target
from shared.records.immybot import ImmyComputer
from shared.runtime.clients import forget_applications
from shared.runtime.process import get_settings, get_store
from shared.store import read_cache
from shared.store.repository import Store
from shared.store.service import POOL_CONNECTIONS
from shared.store.state import Held as StoreHeld
from shared.store.transport import PooledTransport
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from shared.tab import page as tab_module
from shared.tab import snapshot as tab_snapshot
from shared.tab.computers import NEW_SINCE_SYNC, Reach, SoftwareCell, cell, tenant_read
from tests.conftest import immy_settings
from tests.registry import handler

DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
# A missing cell's text: the status, its tag, and the next step (the computer's ImmyBot page).
MISSING = "missing missing install it from ImmyBot"


# -- detection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "found"),
    [
        ("Sentinel Agent", "Sentinel Agent", True),
        ("sentinel AGENT", "Sentinel Agent", True),  # case-insensitive
        ("Huntress", "Huntress Agent", True),  # anywhere in the name
        ("sentinel*agent", "Sentinel  Agent 23.4", True),  # `*` any run of characters
        ("SentinelOne", "Sentinel Agent", False),
        ("Huntress Agent", "Huntress", False),
        ("a.c", "abc", False),  # other regex characters are literal
        ("\uff28\uff35NTRESS", "Huntress Agent", True),  # fullwidth, as rule names are compared
    ],
)
def test_detect_patterns(pattern, name, found):
    assert matches(pattern, name) is found


NO_TARGET = Target(
    client_id=1,
    client_name="Contoso",
    immy_tenant_id=None,
    immy_tenant_name=None,
    mapping="name",
    sites=[],
    quantity=None,
    quantities=Quantities(fixed=0, calculated=0, calculated_unknown=0),
    reasons=[],
)


def stored(computer: int, *names: str, tenant: int = 2) -> StoredComputer:
    return StoredComputer(
        id=computer,
        tenant_id=tenant,
        software=tuple(SoftwareSeen(name=n, version="1.2") for n in names),
    )


EVERYWHERE = Reach({}, 30)


def test_cells_say_installed_missing_or_unknown_from_the_stored_inventory():
    wanted = Wanted("SentinelOne", ("sentinel agent", "SentinelOne"), NO_TARGET)
    found = cell(wanted, stored(3, "Microsoft Edge", "Sentinel Agent"), None, EVERYWHERE)
    assert found.status == "installed"
    assert cell(wanted, stored(3, "Sentinel Agent"), None, EVERYWHERE).version == "1.2"
    assert cell(wanted, stored(3, "Huntress Agent"), None, EVERYWHERE).status == "missing"
    new = cell(wanted, None, None, EVERYWHERE)  # listed live, not in the last sync
    assert (new.status, new.why) == ("unknown", NEW_SINCE_SYNC)
    why = cell(wanted, stored(3, "Sentinel Agent"), "the rule names no detect pattern", EVERYWHERE)
    assert (why.status, why.why) == ("unknown", "the rule names no detect pattern")


def test_only_a_computer_the_rule_targets_is_ever_missing():
    wanted = Wanted("SentinelOne", ("Sentinel Agent",), NO_TARGET)
    reach = Reach({3: "targeted", 4: "stale", 5: "not_deployable"}, 30)
    assert cell(wanted, stored(3), None, reach).status == "missing"
    stale = cell(wanted, stored(4), None, reach)
    assert (stale.status, stale.why) == (
        "not_targeted",
        "not seen by ImmyBot in the 30 days before the sync",
    )
    lab = cell(wanted, stored(5), None, reach)
    assert (lab.status, lab.why) == ("not_targeted", NOT_DEPLOYABLE)
    # Installed is said wherever the software is, targeted or not.
    assert cell(wanted, stored(4, "Sentinel Agent"), None, reach).status == "installed"


def test_a_site_scoped_rule_misses_only_computers_at_its_sites():
    target = NO_TARGET.model_copy(update={"sites": [SiteRef(id=9, name="Lab")]})
    wanted = Wanted("Huntress", ("Huntress Agent",), target, site_scoped=True)
    links = {
        7: SiteLink(computer_id=7, tenant_id=2, client_id=1, site_id=9),
        4: SiteLink(computer_id=4, tenant_id=2, client_id=1, site_id=1),
        3: SiteLink(computer_id=3, tenant_id=2, client_id=1, site_id=None, note=NO_ASSET),
    }
    reach = Reach({}, 30, links)
    assert cell(wanted, stored(7), None, reach).status == "missing"
    assert cell(wanted, stored(4), None, reach) == SoftwareCell("not_targeted", why=OTHER_SITE)
    assert cell(wanted, stored(3), None, reach) == SoftwareCell("not_targeted", why=NO_ASSET)
    assert cell(wanted, stored(6), None, reach) == SoftwareCell("not_targeted", why=NOT_COVERED)
    # Without links nothing is placed: no computer is said to miss it.
    assert cell(wanted, stored(7), None, Reach({}, 30)).why == NO_LINKS
    # The same computers for a rule without a site scope: all targeted.
    everywhere = Wanted("Huntress", ("Huntress Agent",), target)
    assert cell(everywhere, stored(4), None, reach).status == "missing"


def test_a_computer_of_another_tenant_never_appears():
    live = [
        ImmyComputer(id=3, computerName="CONTOSO-LT01", tenantId=2),
        ImmyComputer(id=8, computerName="FABRIKAM-LT01", tenantId=3),
    ]
    kept = [stored(3, "Huntress Agent"), stored(8, "Sentinel Agent", tenant=3)]
    read = tenant_read(live, kept, 2, "")
    assert [c.name for c in read.computers] == ["CONTOSO-LT01"]
    assert set(read.stored) == {3}  # not computer 8's inventory either
    fallback = tenant_read("ImmyBot is unavailable", kept, 2, "")
    assert [c.id for c in fallback.computers] == [3]
    assert fallback.source == "as of the last sync: ImmyBot is unavailable"


def test_the_ticket_users_computers_come_first_then_online_ones_by_name():
    live = [
        ImmyComputer(id=1, computerName="A-DESK", tenantId=2, isOnline=True),
        ImmyComputer(id=2, computerName="B-DESK", tenantId=2, isOnline=False),
        ImmyComputer(id=3, computerName="Y-LAPTOP", tenantId=2, primaryUserEmail="Dana@C.com"),
        ImmyComputer(id=4, computerName="Z-LAPTOP", tenantId=2, primaryUserEmail="dana@c.com "),
    ]
    read = tenant_read(live, [], 2, "dana@c.com")
    assert [c.id for c in read.computers] == [3, 4, 1, 2]


# -- through the handler, against Azurite and both sandboxes -----------------------------------------


def tab(ticket_id: str = "1") -> func.HttpResponse:
    request = func.HttpRequest(
        "GET",
        f"/api/technician-tab/ticket/{ticket_id}",
        body=b"",
        route_params={"ticket_id": ticket_id},
    )
    return asyncio.run(handler("technician_tab")(request))


def page(ticket_id: str = "1") -> str:
    response = tab(ticket_id)
    assert response.status_code == 200, response.get_body()[:300]
    return response.get_body().decode()


def cells(html: str, computer: str) -> dict[str, str]:
    """Software -> the text of its cell in `computer`'s row."""
    row = html.split(f">{computer}</bdi></a>", 1)[1].split("</tr>", 1)[0]
    found = re.findall(r'<td class="sw (\w+)" data-software="([^"]+)">(.*?)</td>', row, re.S)
    return {
        name: status + " " + re.sub(r"<[^>]+>", "", text).strip() for status, name, text in found
    }


@pytest.fixture
def both(configure, halo_sandbox, monkeypatch):
    forget_applications()
    read_cache.forget_tab()
    halo_data = demo_data(datetime.now(UTC).date())
    halo = halo_sandbox(halo_data)
    immy = ImmyBotSandbox(immy_data_for(halo_data)).start()

    def start(rules: bytes = DEMO_RULES.read_bytes(), data: HaloDataSet = halo_data, **extra: str):
        halo.set_data(data)
        configure(
            halo.url, TAB_FRAME_ORIGINS="https://msp.halopsa.com", **immy_settings(immy), **extra
        )
        import_rules(get_store(), rules, datetime.now(UTC).date())
        report = asyncio.run(run_sync())
        assert report.outcome is Outcome.SUCCEEDED, report.error
        return immy

    yield start
    tab_module.after_response.wait(10)
    immy.stop()
    forget_applications()


def heading(html: str, software: str) -> str:
    """The text of `software`'s line in "Expected software", tags stripped."""
    line = html.split(f"<li><b><bdi>{software}</bdi></b>", 1)[1].split('<span class="why">', 1)[0]
    return software + re.sub(r"<[^>]+>", "", line).rstrip()


@pytest.mark.integration
def test_the_heading_shows_billed_targeted_and_installed_as_the_reconciliation_does(both):
    immy = both(IMMY_HALO_LINK_ID="1")
    before = immy.stats()["requests"]
    html = page()
    assert heading(html, "SentinelOne") == "SentinelOne — billed 25 · targeted 5 · installed 2"
    assert heading(html, "Huntress") == (
        "Huntress — billed by contract (no quantity) · targeted 5 · installed 3"
    )
    reconciliation = json.loads(
        handler("reconciliation")(
            func.HttpRequest(
                "GET", "/api/reconciliation", body=b"", params={"software": "SentinelOne"}
            )
        ).get_body()
    )
    contoso = next(r for r in reconciliation["rows"] if r["client_name"] == "Contoso Ltd")
    assert (contoso["quantity"], contoso["targeted"], contoso["installed"]) == (25, 5, 2)
    # The view asked ImmyBot for the tenant's computer list, and nothing per computer.
    after = immy.stats()["requests"]
    assert after["computers"] - before["computers"] == 1
    assert after["detected_software"] == after["inventory_search"] - before["inventory_search"] == 0


@pytest.mark.integration
def test_installed_and_missing_come_from_the_stored_inventory(both):
    immy = both(IMMY_HALO_LINK_ID="1")
    html = page()
    assert cells(html, "CONTOSO-LT01") == {
        "Huntress": "installed installed 0.14.46",
        "SentinelOne": MISSING,
    }
    assert cells(html, "CONTOSO-LT02")["SentinelOne"] == "installed installed 23.4.4.223"  # id 4
    assert cells(html, "CONTOSO-LT02")["Huntress"] == MISSING
    # Id 7 was never inventoried: the bulk search cannot tell that from "not installed", and the
    # page says so beside the table.
    assert cells(html, "CONTOSO-LAB01") == {
        "Huntress": MISSING,
        "SentinelOne": MISSING,
    }
    assert "a computer ImmyBot never inventoried shows as missing" in html
    # The ticket user's computer first and open; the other four inside <details> with their count.
    mine, others = html.split("<details", 1)
    assert "CONTOSO-LT01" in mine and "CONTOSO-LT02" not in mine
    assert "Other computers in the tenant (4)" in others and "CONTOSO-LT01" not in others
    # A computer of another tenant never appears.
    assert "FABRIKAM" not in html and "MSP-" not in html and "NWT-" not in html
    # Technician Tools for this ticket, and each computer's page, in a new tab.
    assert (
        f'<a class="immy" href="{immy.url}/technician-pod/psa/1/ticket/1" target="_blank" '
        'rel="noopener noreferrer">'
    ) in html
    assert f'<a href="{immy.url}/computers/3" target="_blank" rel="noopener noreferrer">' in html
    assert "script-src" not in tab().headers["Content-Security-Policy"]


@pytest.mark.integration
def test_each_missing_cell_links_to_its_computers_immybot_page(both):
    immy = both()
    html = page()
    for computer_id, name, software in (
        (3, "CONTOSO-LT01", "SentinelOne"),
        (4, "CONTOSO-LT02", "Huntress"),
    ):
        row = html.split(f">{name}</bdi></a>", 1)[1].split("</tr>", 1)[0]
        missing = row.split(f'data-software="{software}">', 1)[1].split("</td>", 1)[0]
        assert missing == (
            '<span class="tag bad">missing</span> '
            f'<a class="next" href="{immy.url}/computers/{computer_id}" target="_blank" '
            'rel="noopener noreferrer">install it from ImmyBot</a>'
        )
    # Installed and unknown cells carry no next step.
    assert html.count('class="next"') == sum(
        text.startswith("missing")
        for name in (
            "CONTOSO-LT01",
            "CONTOSO-LT02",
            "CONTOSO-WS01",
            "CONTOSO-SRV01",
            "CONTOSO-LAB01",
        )
        for text in cells(html, name).values()
    )


@pytest.mark.integration
@pytest.mark.parametrize(
    ("ticket", "why"),
    [
        ("7", "no ImmyBot tenant has this name"),  # Wide World Importers
        # Woodgrove Bank: its Entra tenant is linked to two ImmyBot tenants
        ("8", "2 ImmyBot tenants are linked to this client&#39;s Microsoft Entra tenant "),
    ],
)
def test_an_unmapped_client_is_sent_to_an_admin_and_nowhere_a_technician_cannot_go(
    both, ticket, why
):
    both(IMMY_HALO_LINK_ID="1")
    html = page(ticket)
    assert f"This client has no ImmyBot tenant ({why}" in html
    assert "), so its computers cannot be shown: ask an admin to map this client." in html
    assert "/api/mappings" not in html and "map it explicitly" not in html
    # The only link left is ImmyBot's Technician Tools for the ticket: nothing of the app's API.
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all("/technician-pod/psa/1/ticket/" in h for h in hrefs), hrefs


@pytest.mark.integration
def test_no_technician_tools_link_without_the_link_id(both):
    both()
    assert "technician-pod" not in page()


@pytest.mark.integration
def test_detect_patterns_match_case_insensitively(both):
    rules = json.loads(DEMO_RULES.read_bytes())
    for rule in rules["rules"]:
        rule["detect"] = (
            ["HUNTRESS agent"] if rule["software"] == "Huntress" else ["sentinel*AGENT"]
        )
    both(json.dumps(rules).encode())
    html = page()
    found = cells(html, "CONTOSO-LT01")
    assert found == {"Huntress": "installed installed 0.14.46", "SentinelOne": MISSING}
    assert heading(html, "SentinelOne").endswith("installed 2")


@pytest.mark.integration
def test_a_rule_without_detect_says_installed_is_unknown_never_guessed(both):
    rules = json.loads(DEMO_RULES.read_bytes())
    for rule in rules["rules"]:
        if rule["software"] == "SentinelOne":
            rule.pop("detect")  # its name, "SentinelOne", is not its display name
    both(json.dumps(rules).encode())
    html = page()
    why = "the rule names no detect pattern"
    assert cells(html, "CONTOSO-LT02")["SentinelOne"] == f"unknown unknown {why}"
    assert heading(html, "SentinelOne") == (
        f"SentinelOne — billed 25 · targeted 5 · installed unknown ({why})"
    )


@pytest.mark.integration
def test_a_computer_new_since_the_sync_is_unknown(both):
    immy = both()
    data = immy.data
    template = next(c for c in data.computers if c["id"] == 4)
    data.computers.append({**template, "id": 31, "computerName": "CONTOSO-NEW01"})
    immy.set_data(data)  # ImmyBot lists it now; the last sync did not see it
    html = page()
    assert cells(html, "CONTOSO-NEW01") == {
        "Huntress": f"unknown unknown {NEW_SINCE_SYNC}",
        "SentinelOne": f"unknown unknown {NEW_SINCE_SYNC}",
    }
    assert heading(html, "SentinelOne").endswith("targeted 5 · installed 2")  # as of the sync


@pytest.mark.integration
def test_immybot_down_shows_the_stored_list_and_its_inventory(both):
    immy = both()
    immy.stop()
    html = page()
    assert "as of the last sync: ImmyBot is unavailable" in html
    assert cells(html, "CONTOSO-LT01") == {
        "Huntress": "installed installed 0.14.46",
        "SentinelOne": MISSING,
    }
    assert heading(html, "SentinelOne") == "SentinelOne — billed 25 · targeted 5 · installed 2"


@pytest.mark.integration
def test_contracts_in_grace_and_ending_soon(both):
    today = datetime.now(UTC).date()
    data = demo_data(today)
    for contract in data.contracts:
        if contract["id"] == 1:  # Contoso's Managed Security ended 3 days ago: Huntress grace is 7
            contract["end_date"] = f"{today - timedelta(days=3)}T00:00:00"
            contract["expired"] = True
    both(data=data)
    html = page()
    contract = html.split("<td><bdi>MSEC-000001</bdi></td>", 1)[1].split("</tr>", 1)[0]
    assert '<span class="tag warn">in grace</span>' in contract
    assert "(Managed Security) in grace" in html  # Huntress' reason says so too
    # Huntress itself ends with the grace: the contract's 3 days ago plus 7, so in 5 days.
    assert heading(html, "Huntress").endswith("· installed 3 ends in 5 days")
    fabrikam = page("3")  # Managed Security ends in 20 days, + 7 grace days: 28 days
    assert heading(fabrikam, "Huntress").endswith(" ends in 28 days")
    assert f"not covered from {today + timedelta(days=28)}" in fabrikam
    # Contoso's SentinelOne lines are open: no end beside it.
    assert heading(html, "SentinelOne") == "SentinelOne — billed 25 · targeted 5 · installed 2"


# -- what a view costs: Table round trips, writes, clients ------------------------------------------


class Counting(PooledTransport):
    """The app's transport, recording every Table request as (method, path)."""

    def __init__(self) -> None:
        super().__init__(pool_size=POOL_CONNECTIONS, connect_timeout=5, read_timeout=30)
        self.requests: list[tuple[str, str]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append((request.method, request.url.split("?", 1)[0]))
        return super().send(request, **kwargs)


def counting_store() -> tuple[Store, Counting]:
    """The app's store, with every Table request it makes recorded."""
    settings = get_settings()
    transport = Counting()
    service = TableServiceClient.from_connection_string(
        settings.tables_connection_string.get_secret_value(), transport=transport
    )
    return Store(service, prefix=settings.tables_prefix), transport


class Held:
    """Stands in for the after-response worker: keeps the work until `run()`."""

    def __init__(self) -> None:
        self.work: list[Any] = []

    def submit(self, what: str, work: Any) -> None:
        self.work.append(work)

    def run(self) -> None:
        while self.work:
            self.work.pop(0)()

    def wait(self, timeout: float | None = None) -> None:
        self.run()


@pytest.mark.integration
def test_a_view_makes_at_most_four_table_requests_and_no_write_and_two_once_indexed(
    both, azurite, monkeypatch
):
    both()
    store, transport = counting_store()
    monkeypatch.setattr(tab_module, "get_store", lambda: store)
    monkeypatch.setattr(read_cache.generations, "ttl", 3600.0)  # no refresh mid-test
    held = Held()
    monkeypatch.setattr(tab_module, "after_response", held)
    monkeypatch.setattr(tab_snapshot, "after_response", held)

    page()  # the first view of the generation reads what every view shares
    held.run()  # ...and after its response writes its memo and loads the two indexes
    assert any(method in ("PUT", "PATCH", "MERGE", "POST") for method, _ in transport.requests)

    # Nothing kept but the generation's shared data: the status and last run, the client's
    # record and its tenant's stored computers, side by side; nothing written.
    read_cache.statuses.clear()
    read_cache.client_records.clear()
    read_cache.tenant_computers.clear()
    read_cache.client_index.clear()
    read_cache.computer_index.clear()
    transport.requests.clear()
    page("1")
    assert len(transport.requests) == 4, transport.requests
    assert all(method == "GET" for method, _ in transport.requests), transport.requests
    transport.requests.clear()
    # The indexes again: for clients and for computers, the generation's index of their rows,
    # then one range read per table holding them (one here); ticket 1's memo is written already.
    held.run()
    assert [m for m, _ in transport.requests] == ["GET"] * 4

    # With the indexes, a view of a client not seen before reads neither its record nor its
    # tenant's computers: the status and the last run only (and those are kept for 5 s).
    read_cache.statuses.clear()
    read_cache.client_records.clear()
    read_cache.tenant_computers.clear()
    for ticket in ("1", "2", "1"):
        transport.requests.clear()
        html = page(ticket)
        assert "Contoso Ltd" in html
        assert 'SentinelOne</bdi></b> <span class="numbers">— <bdi>billed 25 · targeted 5' in html
        assert len(transport.requests) <= 2, transport.requests
        assert all(method == "GET" for method, _ in transport.requests), transport.requests
    # Ticket 1's memo was written already (no write again); ticket 2's waits for after its response.
    assert len(held.work) == 1
    transport.requests.clear()
    held.run()
    assert [m for m, _ in transport.requests] == ["POST"]  # one transaction
    assert store.ticket_client(2) == 1


@pytest.mark.integration
def test_status_and_client_records_are_kept_and_a_hold_here_is_seen_at_once(
    both, azurite, monkeypatch
):
    both()
    store, transport = counting_store()
    read_cache.forget_tab()
    held = Held()  # the client index's load, kept until the end
    monkeypatch.setattr(tab_snapshot, "after_response", held)
    now = [1000.0]

    def status():
        return asyncio.run(tab_snapshot.sync_status(store, lambda: now[0]))

    first = status()
    assert first.pointer is not None and first.held is None
    assert len(transport.requests) == 2
    transport.requests.clear()
    now[0] += read_cache.TTL_SECONDS - 0.1
    assert status() is first and transport.requests == []  # kept: no round trip
    store.set_held(
        StoreHeld(
            generation=first.pointer.generation,
            run_id="r",
            held_at=datetime.now(UTC),
            synced_at=datetime.now(UTC),
            reason="{}",
            fingerprint="f",
        )
    )
    transport.requests.clear()
    assert status().held is not None  # this process's hold: read again at once
    assert len(transport.requests) == 2
    transport.requests.clear()
    now[0] += read_cache.TTL_SECONDS
    status()
    assert len(transport.requests) == 2  # past the TTL: read again

    generation = first.pointer.generation
    transport.requests.clear()
    record = asyncio.run(tab_snapshot.client_record(store, generation, 1))
    # The generation's index bucket (which generation holds client 1's rows), then the rows.
    assert record is not None and record.client.id == 1 and len(transport.requests) == 2
    assert asyncio.run(tab_snapshot.client_record(store, generation, 1)) is record
    assert len(transport.requests) == 2  # a generation's records never change: kept
    transport.requests.clear()
    assert asyncio.run(tab_snapshot.client_record(store, generation, 2)) is not None
    assert len(transport.requests) == 1  # the bucket is kept too: only the client's rows
    held.run()  # the generation's client index: every client's rows, read once
    transport.requests.clear()
    found = asyncio.run(tab_snapshot.client_record(store, generation, 3))
    assert found is not None and found.client.id == 3 and transport.requests == []
    assert asyncio.run(tab_snapshot.client_record(store, generation, 999)) is None
    assert transport.requests == []  # not in the generation: the index says so too


@pytest.mark.integration
def test_the_memo_write_lands_after_the_response(both):
    both()
    # The count is the process's: another test may have failed a write of its own before.
    failures = tab_module.after_response.failures
    page("2")
    tab_module.after_response.wait(10)
    assert get_store().ticket_client(2) == 1
    assert tab_module.after_response.failures == failures


class FailingStore:
    """A store whose memo write fails the first time, then works; it keeps what it was sent."""

    identity = "failing|"

    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    def remember_ticket_clients(self, memos: list[tuple[int, int, datetime]]) -> int:
        self.calls.append([ticket for ticket, _, _ in memos])
        if len(self.calls) == 1:
            raise ConnectionError("storage hiccup")
        return 1


def test_a_failed_memo_write_is_logged_counted_and_retried(caplog):
    store = FailingStore()
    failures = tab_module.after_response.failures
    now = datetime.now(UTC)
    tab_module.remember_after_response(store, 42, 7, now)  # type: ignore[arg-type]
    tab_module.after_response.wait(10)
    assert tab_module.after_response.failures == failures + 1
    assert "remember the clients of tickets failed: ConnectionError" in caplog.text
    assert "storage hiccup" not in caplog.text  # the class only, never the message
    tab_module.remember_after_response(store, 42, 7, now)  # not marked written: tried again
    tab_module.after_response.wait(10)
    tab_module.remember_after_response(store, 42, 7, now)  # written now: skipped
    tab_module.after_response.wait(10)
    assert store.calls == [[42], [42]]


def test_memos_waiting_together_are_written_together(monkeypatch):
    store = FailingStore()
    store.calls.append([])  # the first write succeeds
    held = Held()
    monkeypatch.setattr(tab_module, "after_response", held)
    now = datetime.now(UTC)
    for ticket in (5, 3, 5, 4):  # a burst of first views; ticket 5 twice
        tab_module.remember_after_response(store, ticket, 7, now)  # type: ignore[arg-type]
    assert len(held.work) == 1  # one write scheduled for all of them
    held.run()
    assert store.calls[1:] == [[3, 4, 5]]
    tab_module.remember_after_response(store, 3, 7, now)  # type: ignore[arg-type]
    assert held.work == []  # written: nothing more to do
