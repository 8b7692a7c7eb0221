"""The tab in real headless Chromium, framed the way HaloPSA frames it.

A page on one loopback origin (standing in for HaloPSA) embeds the tab, served from another origin
through the registered handler; it renders. A page on an origin not in TAB_FRAME_ORIGINS is
refused by the tab's Content-Security-Policy. Screenshots at 480 and 1200 px (ticket 1: the
Technician Tools link, and SentinelOne missing on the user's laptop with its next step) go to a
temporary folder, or to $SCREENSHOT_DIR (`make screenshots`: docs/images/).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from sandbox.devhost import DevHost, function_key
from sandbox.halo_data import demo_data
from sandbox.host_http import serve
from sandbox.immybot import ImmyBotSandbox
from sandbox.immybot_data import immy_data_for
from shared.api.rules import import_rules
from shared.runtime.process import get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.conftest import immy_settings
from tests.registry import registered

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
# Tests never write tracked files: `make screenshots` points this at docs/images on purpose.
SCREENSHOTS = os.environ.get("SCREENSHOT_DIR")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "Debian packages chromium and chromium-driver are not installed "
        "(make setup installs them where apt-get is available)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def host_page(tab_url: str) -> bytes:
    return f"""<!doctype html><html><head><title>HaloPSA ticket</title></head>
<body style="margin:0;font-family:sans-serif">
<div style="background:#1d3557;color:#fff;padding:8px 12px">HaloPSA &middot; Ticket 1 &middot; Tools tab</div>
<iframe id="tab" src="{tab_url}" style="border:0;width:100%;height:900px"
        onload="document.body.dataset.loaded='yes'"></iframe>
</body></html>""".encode()


class Pages:
    """A loopback origin serving one page (set once the tab's URL is known)."""

    def __init__(self) -> None:
        self.page = b""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = owner.page
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser():
    os.environ["SE_OFFLINE"] = "true"  # never let Selenium Manager reach out for a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def framed(configure, halo_sandbox):
    """The allowed HaloPSA stand-in, a foreign page, and the tab's own server."""
    allowed, foreign = Pages(), Pages()
    data = demo_data(datetime.now(UTC).date())
    sandbox = halo_sandbox(data)
    immy = ImmyBotSandbox(immy_data_for(data)).start()
    configure(
        sandbox.url, TAB_FRAME_ORIGINS=allowed.origin, IMMY_HALO_LINK_ID="1", **immy_settings(immy)
    )
    import_rules(
        get_store(), (ROOT / "sandbox" / "demo_rules.json").read_bytes(), datetime.now(UTC).date()
    )
    assert asyncio.run(run_sync()).outcome is Outcome.SUCCEEDED
    server = serve(DevHost(registered().values()).dispatch, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # "localhost" makes the tab a different origin from the 127.0.0.1 pages that frame it.
    tab_url = (
        f"http://localhost:{server.server_address[1]}/api/technician-tab/ticket/1"
        f"?code={function_key('technician_tab')}"
    )
    allowed.page = foreign.page = host_page(tab_url)
    yield allowed, foreign, tab_url, immy.url
    allowed.close()
    foreign.close()
    server.shutdown()
    server.server_close()
    immy.stop()


def open_framed(driver, url: str, width: int) -> None:
    driver.set_window_size(width, 1100)
    driver.get(url)
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.body.dataset.loaded") == "yes"
    )


def cells(row) -> dict[str, str]:
    """Software -> what its cell says, for one computer's row."""
    return {
        td.get_attribute("data-software"): td.text
        for td in row.find_elements(By.CSS_SELECTOR, "td.sw")
    }


def test_the_tab_renders_inside_the_allowed_origin(browser, framed, tmp_path):
    allowed, _, tab_url, immy_url = framed
    csp = httpx.get(tab_url, timeout=30).headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    images = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    images.mkdir(parents=True, exist_ok=True)
    for width in (1200, 480):
        open_framed(browser, allowed.origin + "/", width)
        WebDriverWait(browser, 10).until(ec.frame_to_be_available_and_switch_to_it((By.ID, "tab")))
        heading = browser.find_element(By.TAG_NAME, "h1").text
        assert heading == "#1 Outlook keeps asking for my password"
        software = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul.software li b")]
        assert software == ["Huntress", "SentinelOne"]
        numbers = [n.text for n in browser.find_elements(By.CSS_SELECTOR, "ul.software .numbers")]
        assert numbers[1] == "— billed 25 · targeted 5 · installed 2"
        mine = browser.find_element(By.CSS_SELECTOR, "tr.mine a")
        assert mine.text == "CONTOSO-LT01"
        assert mine.get_attribute("target") == "_blank"
        # Installed / missing for the ticket user's computer (sandbox/immybot_data.py: id 3), and
        # the missing one's next step: the computer's ImmyBot page, in a new tab.
        row = browser.find_element(By.CSS_SELECTOR, "tr.mine")
        assert cells(row) == {
            "Huntress": "installed 0.14.46",
            "SentinelOne": "missing install it from ImmyBot",
        }
        step = row.find_element(By.CSS_SELECTOR, 'td[data-software="SentinelOne"] a.next')
        assert step.get_attribute("href") == f"{immy_url}/computers/3"
        assert step.get_attribute("target") == "_blank"
        assert step.is_displayed()
        tools = browser.find_element(By.CSS_SELECTOR, "a.immy")
        assert tools.get_attribute("href") == f"{immy_url}/technician-pod/psa/1/ticket/1"
        assert tools.get_attribute("target") == "_blank"
        assert tools.get_attribute("rel") == "noopener noreferrer"
        # The rest of the tenant sits in a closed <details>; opening it needs no script.
        others = browser.find_element(By.CSS_SELECTOR, "details.others")
        assert others.get_attribute("open") is None
        others.find_element(By.TAG_NAME, "summary").click()
        WebDriverWait(browser, 10).until(
            lambda _, shown=others: shown.get_attribute("open") is not None
        )
        lab = others.find_element(By.XPATH, ".//tr[.//a[normalize-space(.)='CONTOSO-LAB01']]")
        # Never inventoried: the bulk inventory cannot tell it from "not installed".
        missing = "missing install it from ImmyBot"
        assert cells(lab) == {"Huntress": missing, "SentinelOne": missing}
        # Nothing wider than the frame: the layout holds at this width.
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        browser.switch_to.default_content()
        # Taken once the framed tab has loaded and been read, so the picture shows what was checked.
        browser.save_screenshot(str(images / f"tab-{width}.png"))
    assert (images / "tab-480.png").stat().st_size > 10_000


def test_a_foreign_origin_is_refused_by_csp(browser, framed):
    allowed, foreign, _, _ = framed
    open_framed(browser, foreign.origin + "/", 1200)
    browser.switch_to.frame(browser.find_element(By.ID, "tab"))
    assert browser.find_elements(By.CSS_SELECTOR, "ul.software") == []
    browser.switch_to.default_content()
    messages = [entry["message"] for entry in browser.get_log("browser")]
    assert any("frame-ancestors" in m and allowed.origin in m for m in messages), messages
