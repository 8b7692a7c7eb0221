"""Telemetry: OpenTelemetry export to Application Insights when its connection string is set.

Off (and not even imported: it costs start-up time) when APPLICATIONINSIGHTS_CONNECTION_STRING is
absent. With Entra-only ingestion (APPLICATIONINSIGHTS_AUTHENTICATION_STRING
`ClientId=...;Authorization=AAD`) it authenticates as the app's managed identity.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

LOGGER = "halo_immy"


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
