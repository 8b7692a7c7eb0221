"""Telemetry: OpenTelemetry export to Application Insights when its connection string is set.

Off (and not even imported: it costs start-up time) when APPLICATIONINSIGHTS_CONNECTION_STRING is
absent. With Entra-only ingestion (APPLICATIONINSIGHTS_AUTHENTICATION_STRING
`ClientId=...;Authorization=AAD`) it authenticates as the app's managed identity.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Mapping
from typing import Any

LOGGER = "halo_immy"
_outgoing = logging.getLogger("halo_immy.outgoing")
# Path segments that name a record: integers of any sign (recurring invoices are negative), and
# GUIDs. A template keeps calls groupable and keeps customer ids out of the logs.
_ID_SEGMENT = re.compile(
    r"(?<=/)(?:-?\d+(?:\.\d+)?|[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})(?=/|$)"
)


def path_template(path: str) -> str:
    """A URL path without its query and with record ids replaced: `/api/Tickets/{id}`."""
    return _ID_SEGMENT.sub("{id}", path.split("?", 1)[0])


def log_outgoing_call(
    service: str,
    method: str,
    path: str,
    *,
    status: int | None,
    started: float,
    retries: int,
    throttled: int = 0,
    error: str | None = None,
) -> None:
    """One structured line per outgoing call (its retries included), beside incoming `api_call`.

    `service` is "halopsa" or "immybot"; `status` is the last answer's (None: no answer);
    `started` is a `time.perf_counter()` reading; `error` names the exception class when the call
    raised (e.g. "HaloUnavailable", or "CancelledError" when a sibling listing failed). Names and
    numbers only: no query values, no record ids, no token.
    """
    line: dict[str, Any] = {
        "event": "outgoing_call",
        "service": service,
        "method": method,
        "path": path_template(path),
        "status": status,
        "ms": round((time.perf_counter() - started) * 1000, 1),
        "retries": retries,
        "throttled": throttled,
    }
    if error is not None:
        line["error"] = error
    _outgoing.info(json.dumps(line))


def _auth_client_id(authentication: str) -> tuple[bool, str | None]:
    parts = dict(item.split("=", 1) for item in authentication.split(";") if "=" in item)
    return parts.get("Authorization", "").upper() == "AAD", parts.get("ClientId") or None


def configure_telemetry(environ: Mapping[str, str] = os.environ) -> bool:
    """Send the app's logs and traces to Application Insights if configured; True if it did."""
    connection = environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection:
        return False
    from azure.monitor.opentelemetry import configure_azure_monitor

    options: dict[str, Any] = {
        "connection_string": connection,
        "logger_name": LOGGER,
        # Only what this app uses: web-framework and database instrumentations cost start-up time.
        "instrumentation_options": {
            name: {"enabled": False}
            for name in ("django", "fastapi", "flask", "psycopg2", "urllib", "urllib3", "requests")
        },
    }
    aad, client_id = _auth_client_id(environ.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
    if aad:
        from azure.identity import ManagedIdentityCredential

        options["credential"] = ManagedIdentityCredential(client_id=client_id)
    configure_azure_monitor(**options)
    return True
