"""A setup check an admin runs once: settings, HaloPSA, ImmyBot and Table Storage, one line each.

`GET /api/setup/check` (master key) answers a `SetupReport`; `python -m shared.api.setup`
(`make check`) prints the same lines for the settings in the environment and exits 0 when every
required check passed, 1 otherwise. The HaloPSA and ImmyBot checks live in shared.api.setup_halo and
shared.api.setup_immybot; the models in shared.api.setup_models.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

from shared.api.setup_halo import halo_checks
from shared.api.setup_immybot import immy_checks
from shared.api.setup_models import (
    CheckResult,
    CheckStatus,
    SetupReport,
    failed,
    missing,
    ok,
    skipped,
)
from shared.core.text import refused_character
from shared.settings import Settings, SettingsError, is_loopback, load_settings
from shared.store.repository import Store
from shared.store.service import table_service

STORAGE = "storage"
# A group of checks that has not finished by then is reported as failed (HTTP answers in 230 s).
GROUP_TIMEOUT_SECONDS = 90.0
TAB_PATH = "/api/technician-tab/ticket/$FAULTID"
TAB_NOTE = (
    "HaloPSA also needs the technician_tab function key: append ?code=<key> (az functionapp "
    "function keys list --function-name technician_tab; docs/halopsa-setup.md, step 4)"
)
SETTINGS_FIX = "set it in the Function App's environment variables (locally: the environment)"
# A Host header or host name worth echoing: a name, IPv4 or bracketed IPv6, and a port.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?")


async def run_checks(
    *, load: Callable[[], Settings] = load_settings, host: str | None = None
) -> SetupReport:
    """Every check, in a fixed order: settings first; the rest need valid settings."""
    settings, lines = settings_checks(load)
    if settings is None:
        why = "not checked: the settings above are invalid"
        lines += [skipped(group, why, required=True) for group in ("halo", "immybot", STORAGE)]
        return report(lines, host)
    groups = await asyncio.gather(
        _group("halo", halo_checks(settings)),
        _group("immybot", immy_checks(settings)),
        _group(STORAGE, _storage_lines(settings)),
    )
    lines += [line for group in groups for line in group]
    return report(lines, host or settings.website_hostname)


def report(lines: list[CheckResult], host: str | None) -> SetupReport:
    """The answer: the lines, whether every required one passed, and the Custom Tab URL."""
    return SetupReport(
        ok=all(line.passed for line in lines),
        checks=lines,
        tab_url=tab_url(host),
        tab_url_note=TAB_NOTE,
    )


async def _group(name: str, checks: Awaitable[list[CheckResult]]) -> list[CheckResult]:
    """A group's lines; a group that overruns or breaks is one failed line, never an error."""
    try:
        return await asyncio.wait_for(checks, GROUP_TIMEOUT_SECONDS)
    except TimeoutError:
        detail = f"no answer within {GROUP_TIMEOUT_SECONDS:.0f} s"
        return [failed(name, detail, "check that it is up and reachable from the app")]
    except Exception as error:  # a bug in a check must not hide the other lines
        return [failed(name, f"the check itself failed: {type(error).__name__}", "report this")]


def settings_checks(load: Callable[[], Settings]) -> tuple[Settings | None, list[CheckResult]]:
    """The settings, or None with one line per missing or malformed setting (named, no value)."""
    try:
        settings = load()
    except SettingsError as error:
        lines = []
        for key, why in error.problems.items():
            fix = why if "Key Vault" in why else SETTINGS_FIX
            make = missing if why == "is missing" else failed
            lines.append(make(f"settings.{key}", f"{key} {why}", fix))
        return None, lines
    refused = refused_character(settings.immy_tag_prefix)
    if refused is not None:
        # Not a SettingsError (settings sit below the text rules): the app runs, no tag is kept.
        detail = f"IMMY_TAG_PREFIX may not contain {refused}: every ImmyBot tag name starts with it"
        fix = "set it to visible characters (the default is 'Halo: ')"
        return settings, [failed("settings.IMMY_TAG_PREFIX", detail, fix)]
    return settings, [ok("settings", "every setting is present and valid")]


async def _storage_lines(settings: Settings) -> list[CheckResult]:
    """The storage check, off the event loop (the Table SDK blocks)."""
    return [await asyncio.to_thread(check_storage, settings)]


def check_storage(settings: Settings) -> CheckResult:
    """Table Storage: create (if need be) and read the sync's state table, one try, no retries."""
    identity = settings.tables_endpoint is not None
    source = "TABLES_ENDPOINT" if identity else "TABLES_CONNECTION_STRING"
    try:
        service = table_service(settings, retry_total=0)
    except (ValueError, AzureError) as error:
        return failed(STORAGE, f"{source} is not usable: {type(error).__name__}", f"check {source}")
    try:
        pointer = Store(service, prefix=settings.tables_prefix).current()
    except (AzureError, ValueError) as error:
        return _storage_failure(error, source, identity)
    finally:
        service.close()
    state = f"serving generation {pointer.generation}" if pointer else "no sync has completed yet"
    return ok(STORAGE, f"Table Storage reachable through {source}; {state}")


def _storage_failure(error: Exception, source: str, identity: bool) -> CheckResult:
    """The storage line for an SDK error: a missing role, a refused key, or no answer."""
    # Only the type and status go out: an SDK message can carry the URL, and with it a SAS.
    status = getattr(error, "status_code", None)
    detail = f"{type(error).__name__}" + (f" (HTTP {status})" if status else "")
    if identity and isinstance(error, ClientAuthenticationError) and status is None:
        fix = "the app has no identity token: give it a managed identity (the infra does)"
        return failed(STORAGE, detail, fix)
    if identity and isinstance(error, HttpResponseError) and status == 403:
        role = "grant the app's identity 'Storage Table Data Contributor' on the storage account"
        return missing(STORAGE, detail, role)
    if isinstance(error, HttpResponseError) and status in (401, 403):
        return failed(STORAGE, detail, f"storage refused the key in {source}: copy it again")
    return failed(STORAGE, detail, f"Table Storage did not answer: check {source} and the network")


def request_host(url: str | None, host_header: str | None) -> str | None:
    """The host a request reached the app by: its Host header, else its URL's, if well-formed."""
    try:
        from_url = urlsplit(url or "").netloc
    except ValueError:
        from_url = ""
    for candidate in ((host_header or "").strip(), from_url):
        if candidate and _HOST.fullmatch(candidate):
            return candidate.lower()
    return None


def tab_url(host: str | None) -> str:
    """The Custom Tab URL for `host` (https, or http for loopback); a placeholder host if none."""
    if not host or not _HOST.fullmatch(host):
        return f"https://<app>.azurewebsites.net{TAB_PATH}"
    try:
        hostname = urlsplit(f"//{host}").hostname
    except ValueError:
        hostname = None
    return f"{'http' if is_loopback(hostname) else 'https'}://{host}{TAB_PATH}"


def text_lines(result: SetupReport) -> list[str]:
    """The report as aligned text: status, name, detail, and the fix where there is one."""
    width = max((len(line.name) for line in result.checks), default=0)
    lines = []
    for line in result.checks:
        text = f"{line.status.value:<8} {line.name:<{width}}  {line.detail}"
        if line.fix:
            text += f"  -> fix: {line.fix}"
        if not line.required and line.status in (CheckStatus.MISSING, CheckStatus.FAILED):
            text += " (optional with these settings)"
        lines.append(text)
    lines.append(f"Custom Tab URL: {result.tab_url}")
    lines.append(f"  {result.tab_url_note}")
    lines.append("setup check: " + ("ok" if result.ok else "NOT ok (see missing/failed above)"))
    return lines


def main() -> int:
    """`make check`: run every check against the settings in the environment; 0 when all passed."""
    result = asyncio.run(run_checks())
    print("\n".join(text_lines(result)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
