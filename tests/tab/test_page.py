"""The technician tab: escaping, security headers, coverage, degradation, access."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

import azure.functions as func
import pytest

from sandbox.halo import Faults
from sandbox.halo_data import HaloDataSet, demo_data
from shared.api.problems import PROBLEM_BASE, PROBLEM_JSON
from shared.core.schedule import longest_gap
from shared.records.halo import Ticket
from shared.runtime.process import get_settings, get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from shared.tab.computers import ComputerRow, Computers, SoftwareCell
from shared.tab.render import render, security_headers
from shared.tab.view import TabView
from tests.registry import handler

GROUP = "7f1c2a3b-0000-4000-8000-123456789abc"
HOSTILE = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    "</style><script>alert(2)</script>",
    "javascript:alert(3)",
]


class Live(HTMLParser):
    """Collects what a browser would treat as live markup."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.handlers: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        self.hrefs += [value for name, value in attrs if name in ("href", "src")]


def live(html: str) -> Live:
    parser = Live()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_halopsa_and_immybot_text_is_never_live(text):
    view = TabView(
        ticket_id=6,
        ticket=Ticket(
            id=6, summary=text, client_name=text, user_name=text, user_email=text, site_name=text
        ),
        client_name=text,
        site_name=text,
        notices=[text],
        computers=Computers(
            rows=[
                ComputerRow(
                    name=text,
                    online=True,
                    last_seen=None,
                    user_email=text,
                    url=text,
                    is_ticket_user=True,
                    software=(SoftwareCell("installed", version=text),),
                ),
                ComputerRow(
                    name="ok",
                    online=False,
                    last_seen=None,
                    user_email="",
                    url="javascript:alert(1)",
                    is_ticket_user=False,
                    software=(SoftwareCell("unknown", why=text), SoftwareCell("missing")),
                ),
                ComputerRow(
                    name=text,
                    online=None,
                    last_seen=None,
                    user_email="",
                    url=text,
                    is_ticket_user=False,
                    software=(SoftwareCell("missing"), SoftwareCell("missing")),
                ),
            ],
            software=[text, text],
        ),
        technician_url="javascript:alert(4)",
    )
    page = render("tab.html", ["https://msp.halopsa.com"], view=view)
    found = live(page.html)
    assert "script" not in found.tags and "img" not in found.tags
    assert found.handlers == []
    assert all(h.startswith(("http://", "https://")) for h in found.hrefs)
    assert "javascript:" not in " ".join(found.hrefs)
    assert found.tags.count("style") == 1  # only ours, carrying the nonce


def missing_on(url: str | None) -> str:
    """The tab's one software cell for a computer whose ImmyBot page is `url`, where it is missing."""
    row = ComputerRow("PC-1", True, None, "", url, True, (SoftwareCell("missing"),))
    view = TabView(ticket_id=1, computers=Computers(rows=[row], software=["Huntress"]))
    html = render("tab.html", ["https://msp.halopsa.com"], view=view).html
    return html.split('data-software="Huntress">', 1)[1].split("</td>", 1)[0]


def test_missing_software_says_the_next_step():
    # With the computer's ImmyBot page: install it there, in a new tab.
    assert missing_on("https://msp.immy.bot/computers/7") == (
        '<span class="tag bad">missing</span> <a class="next" '
        'href="https://msp.immy.bot/computers/7" target="_blank" rel="noopener noreferrer">'
        "install it from ImmyBot</a>"
    )
    # Without a page a browser may open: who to ask, and no link.
    for url in (None, "", "javascript:alert(1)"):
        assert missing_on(url) == (
            '<span class="tag bad">missing</span> '
            '<span class="next">ask your ImmyBot admin to install it</span>'
        )


def test_security_headers():
    headers = security_headers(["https://msp.halopsa.com", "https://msp2.halopsa.com"], "abc")
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "style-src 'nonce-abc'" in csp
    assert "frame-ancestors https://msp.halopsa.com https://msp2.halopsa.com" in csp
    assert "script-src" not in csp  # no script at all
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "private, no-store"
    assert "X-Frame-Options" not in headers


def test_schedule_gaps():
    assert longest_gap("0 */15 * * * *") == timedelta(minutes=15)
    assert longest_gap("0 0 * * * *") == timedelta(hours=1)
    assert longest_gap("0 0 6,18 * * *") == timedelta(hours=12)
    assert longest_gap("0 0 9 * * 1-5") == timedelta(days=3)  # Friday to Monday
    with pytest.raises(ValueError, match="six fields"):
        longest_gap("*/5 * * * *")


# -- through the handler, against Azurite and the sandbox --------------------------------------------


# What a browser framing the tab in HaloPSA sends.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def tab(ticket_id: str, headers=None, *, browser: bool = True) -> func.HttpResponse:
    request = func.HttpRequest(
        "GET",
        f"/api/technician-tab/ticket/{ticket_id}",
        body=b"",
        headers={**(BROWSER if browser else {}), **(headers or {})},
        route_params={"ticket_id": ticket_id},
    )
    return asyncio.run(handler("technician_tab")(request))


def html_of(response: func.HttpResponse) -> str:
    assert response.mimetype == "text/html"
    return response.get_body().decode()


@pytest.fixture
def demo(demo_synced, monkeypatch):
    """The synced demo (`demo_synced`), framed by HaloPSA's origin."""
    monkeypatch.setenv("TAB_FRAME_ORIGINS", "https://msp.halopsa.com")
    get_settings.cache_clear()
    return demo_synced


@pytest.mark.integration
def test_tab_shows_ticket_coverage_and_software(demo):
    response = tab("1")
    assert response.status_code == 200
    html = html_of(response)
    assert "Outlook keeps asking for my password" in html
    assert "Contoso Ltd" in html and "Dana Whitfield" in html
    assert "<b><bdi>Huntress</bdi></b>" in html and "<b><bdi>SentinelOne</bdi></b>" in html
    assert "Managed Security" in html
    assert "SentinelOne Complete" in html
    assert "ImmyBot is not configured" in html
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors https://msp.halopsa.com" in csp
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Cache-Control"] == "private, no-store"


@pytest.mark.integration
def test_expiring_contract_is_flagged(demo):
    # Fabrikam: Managed Security ends in 20 days and Huntress allows 7 grace days, so Huntress
    # ends in 28 days; the contract itself is flagged as ending soon.
    html = html_of(tab("3"))
    huntress = html.split("<b><bdi>Huntress</bdi></b>", 1)[1].split("</li>", 1)[0]
    first_day_without = datetime.now(UTC).date() + timedelta(days=28)
    assert '<span class="tag warn">ends in 28 days</span>' in huntress
    assert f"not covered from {first_day_without}: <bdi>contract MSEC-000003 ends " in huntress
    assert "+ 7 grace days</bdi>" in huntress
    assert '<span class="tag warn">soon</span>' in html


@pytest.mark.integration
def test_demo_ticket_with_markup_is_escaped(demo):
    html = html_of(tab("6"))
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in html
    assert "script" not in live(html).tags


@pytest.mark.integration
@pytest.mark.parametrize(
    "bad",
    # Unicode digits pass str.isdigit() and crashed int().
    ["abc", "0", "-1", "1.5", "99999999999", " 7", "²", "٣", "\uff11", "2147483648", "7\n", ""],
)
def test_bad_ticket_ids_are_a_400_page(demo, bad):
    response = tab(bad)
    assert response.status_code == 400
    assert "positive whole number" in html_of(response)
    assert "Traceback" not in html_of(response)


@pytest.mark.integration
def test_unknown_ticket_is_a_404_page(demo):
    response = tab("4242")
    assert response.status_code == 404
    assert "HaloPSA has no ticket 4242" in html_of(response)


def principal(*groups: str) -> str:
    claims = [{"typ": "groups", "val": g} for g in groups] + [
        {"typ": "name", "val": "tech@msp.example"}
    ]
    return base64.b64encode(json.dumps({"auth_typ": "aad", "claims": claims}).encode()).decode()


@pytest.mark.integration
def test_group_restriction_with_app_service_authentication(demo, monkeypatch):
    monkeypatch.setenv("TAB_ALLOWED_GROUP", GROUP)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # as App Service sets it
    get_settings.cache_clear()
    assert tab("1").status_code == 403
    assert (
        tab(
            "1", {"X-MS-CLIENT-PRINCIPAL": principal("00000000-0000-4000-8000-000000000000")}
        ).status_code
        == 403
    )
    assert tab("1", {"X-MS-CLIENT-PRINCIPAL": "not base64!"}).status_code == 403
    assert tab("1", {"X-MS-CLIENT-PRINCIPAL": principal(GROUP.upper())}).status_code == 200


@pytest.mark.integration
@pytest.mark.parametrize("enabled", [None, "", "false", "False"])
def test_a_forged_principal_is_refused_when_app_service_authentication_is_off(
    demo, monkeypatch, enabled
):
    """Without App Service Authentication anyone can send the header."""
    monkeypatch.setenv("TAB_ALLOWED_GROUP", GROUP)
    if enabled is None:
        monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    else:
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", enabled)
    get_settings.cache_clear()
    response = tab("1", {"X-MS-CLIENT-PRINCIPAL": principal(GROUP)})
    assert response.status_code == 403
    html = html_of(response)
    assert "App Service Authentication is not enabled" in html
    assert "TAB_ALLOWED_GROUP" in html
    assert "Outlook keeps asking" not in html  # nothing of the ticket leaks


@pytest.mark.integration
def test_a_refusal_is_a_problem_unless_the_caller_reads_html(demo, monkeypatch):
    monkeypatch.setenv("TAB_ALLOWED_GROUP", GROUP)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    get_settings.cache_clear()
    for headers in ({}, {"Accept": "*/*"}, {"Accept": "application/json"}):
        response = tab("1", headers, browser=False)
        assert response.status_code == 403
        assert response.mimetype == PROBLEM_JSON
        problem = json.loads(response.get_body())
        assert (problem["status"], problem["type"]) == (403, PROBLEM_BASE + "not-in-group")
        assert problem["detail"] == "Your account is not in the group allowed to see this tab."
        assert response.headers["Vary"] == "Accept"
        assert response.headers["Cache-Control"] == "private, no-store"
    # The same refusal for a browser: the page, saying the same.
    page = tab("1")
    assert page.status_code == 403 and page.headers["Vary"] == "Accept"
    assert "Your account is not in the group allowed to see this tab." in html_of(page)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "false")
    get_settings.cache_clear()
    unset = json.loads(tab("1", browser=False).get_body())
    assert unset["type"] == PROBLEM_BASE + "sign-in-not-set-up"


@pytest.mark.integration
def test_a_bad_query_on_the_tab_is_refused_in_the_form_asked(demo):
    request = func.HttpRequest(
        "GET",
        "http://localhost/api/technician-tab/ticket/1?ticket=1&ticket=2",
        body=b"",
        headers={},
        params={"ticket": "1,2"},
        route_params={"ticket_id": "1"},
    )
    response = asyncio.run(handler("technician_tab")(request))
    assert response.status_code == 400 and response.mimetype == PROBLEM_JSON
    assert json.loads(response.get_body())["parameters"] == ["ticket"]
    browser = func.HttpRequest(
        "GET",
        "http://localhost/api/technician-tab/ticket/1?ticket=1",
        body=b"",
        headers=BROWSER,
        params={"ticket": "1"},
        route_params={"ticket_id": "1"},
    )
    page = asyncio.run(handler("technician_tab")(browser))
    assert page.status_code == 400
    assert "unknown query parameter &#39;ticket&#39;" in html_of(page)
    assert "frame-ancestors https://msp.halopsa.com" in page.headers["Content-Security-Policy"]


@pytest.mark.integration
def test_without_a_group_the_header_does_not_matter(demo, monkeypatch):
    monkeypatch.delenv("TAB_ALLOWED_GROUP", raising=False)
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    get_settings.cache_clear()
    assert tab("1", {"X-MS-CLIENT-PRINCIPAL": "anything"}).status_code == 200


def test_bidi_controls_in_customer_text_are_isolated():
    """U+202E in a ticket, client, item or computer name reorders only itself."""
    text = "\u202etxt.exe\u202c invoice"
    view = TabView(
        ticket_id=6,
        ticket=Ticket(
            id=6, summary=text, client_name=text, user_name=text, user_email=text, site_name=text
        ),
        client_name=text,
        site_name=text,
        notices=[text],
        warnings=[text],
        computers=Computers(
            rows=[
                ComputerRow(
                    name=text,
                    online=True,
                    last_seen=None,
                    user_email=text,
                    url="https://x.immy.bot/computers/1",
                    is_ticket_user=True,
                    software=(SoftwareCell("installed", version=text),),
                ),
                ComputerRow(
                    name="other",
                    online=False,
                    last_seen=None,
                    user_email="",
                    url=None,
                    is_ticket_user=False,
                    software=(SoftwareCell("unknown", why=text),),
                ),
            ],
            note=text,
            source=text,
            software=["SentinelOne"],
        ),
    )
    html = render("tab.html", ["https://msp.halopsa.com"], view=view).html
    body = html.split("<body>", 1)[1]
    # Every occurrence of the text sits directly inside a <bdi>, which the stylesheet isolates.
    assert body.count(text) == body.count(f"<bdi>{text}</bdi>") >= 10
    assert "bdi { unicode-bidi: isolate; }" in html
    assert (
        "script-src"
        not in security_headers(["https://msp.halopsa.com"], "n")["Content-Security-Policy"]
    )


@pytest.mark.integration
def test_halopsa_down_still_shows_coverage_for_a_known_ticket(demo):
    assert tab("1").status_code == 200  # HaloPSA up: the tab learns ticket 1 is Contoso's
    demo.stop()  # HaloPSA goes away entirely
    html = html_of(tab("1"))
    assert "HaloPSA is unavailable: coverage is from the last sync" in html
    assert "<b><bdi>Huntress</bdi></b>" in html and "Contoso Ltd" in html
    unseen = html_of(tab("2"))
    assert "this ticket&#39;s client is not known yet" in unseen


@pytest.mark.integration
def test_slow_halopsa_times_out_into_a_notice(demo, monkeypatch):

    assert tab("7").status_code == 200
    monkeypatch.setenv("TAB_HALO_TIMEOUT_SECONDS", "0.2")
    get_settings.cache_clear()
    demo.set_faults(Faults(latency_ms=1500))
    html = html_of(tab("7"))
    assert "HaloPSA did not answer in time" in html
    assert "Wide World Importers" in html


@pytest.mark.integration
def test_stale_data_and_failed_runs_are_warned_about(demo, monkeypatch):
    from shared.tab import page as tab_module

    # Two hours after the (copied) store's sync, which may be minutes before this test.
    pointer = get_store().current()
    assert pointer is not None
    later = pointer.synced_at + timedelta(hours=2)
    html = asyncio.run(tab_module.tab_page("1", principal=None, now=later)).html
    assert "The data is 2.0 hours old" in html

    # A refusal fails the run at once (a 500 is retried with back-off first: seconds of waiting).
    demo.set_faults(Faults(fail=[{"resource": "Client", "page": None, "status": 403}]))
    assert asyncio.run(run_sync()).outcome is Outcome.FAILED
    demo.set_faults(Faults())
    assert "The last sync failed" in html_of(tab("1"))


@pytest.mark.integration
def test_a_held_run_is_shown_with_its_reason(demo):
    data = demo_data(datetime.now(UTC).date())
    demo.set_data(HaloDataSet.from_json({**data.to_json(), "contracts": []}))
    assert asyncio.run(run_sync()).outcome is Outcome.HELD
    html = html_of(tab("1"))
    assert "The last sync was held by the mass-change guard" in html
    assert "a HaloPSA record type came back empty" in html
    assert "Contoso Ltd" in html and "Managed Security" in html  # still the previous coverage


@pytest.mark.integration
def test_missing_settings_are_a_503_page(configure, monkeypatch):
    configure("https://msp.halopsa.com")
    monkeypatch.delenv("HALO_CLIENT_SECRET")

    get_settings.cache_clear()
    response = tab("1")
    assert response.status_code == 503
    assert "settings are incomplete" in html_of(response)
