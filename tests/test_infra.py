"""Deployment and operations: settings in one place, the Bicep's security posture, telemetry,
structured API log lines, and the PowerShell example's HTTP contract.

The Bicep compiler cannot be installed here, so the templates are parsed with pycep-parser.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from pycep import BicepParser

from shared.settings import Settings, load_settings
from shared.telemetry import configure_telemetry
from tests.registry import handler

ROOT = Path(__file__).resolve().parent.parent
INFRA = ROOT / "infra"
# Read by the Functions host, the platform or a library, not by shared/settings.py.
PLATFORM = {
    "FUNCTIONS_WORKER_RUNTIME",
    "AzureWebJobsStorage",
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsFeatureFlags",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}
# Azure reaches tables by managed identity (TABLES_ENDPOINT); a connection string is local only.
LOCAL_ONLY = {"TABLES_CONNECTION_STRING"}
# Read by the app, set by App Service itself, so never written in infra or local settings: there
# WEBSITE_AUTH_ENABLED would claim App Service Authentication is on when it is not (and the tab
# would trust a forged principal), and WEBSITE_HOSTNAME would name a host that may not be this app.
SET_BY_PLATFORM = {"WEBSITE_AUTH_ENABLED", "WEBSITE_HOSTNAME"}
# The only app settings api.bicep may write as literals, with their values: fixed on purpose, and
# nothing the docs tell an admin to change. Any other literal would be put back by every
# `azd provision`, undoing what the admin set.
FIXED_SETTINGS = {
    "AzureWebJobsStorage__credential": "managedidentity",  # host storage by identity, never a key
    "TABLES_PREFIX": "",  # the storage account is this deployment's own
}
# main.bicep parameters not mapped from the azd environment: Flex Consumption sizing, which no doc
# asks an admin to change, and ints that an unset variable must not reach as an empty string.
NOT_FROM_AZD = {"maximumInstanceCount", "instanceMemoryMB"}


def parsed(path: Path) -> dict:
    return BicepParser().parse(file_path=path)


def read_settings() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def infra_settings() -> set[str]:
    api = parsed(INFRA / "app" / "api.bicep")
    names: set[str] = set()
    for variable in api["variables"].values():
        # Settings arrays, plain or behind a condition: every {"name": X, "value": ...} entry.
        names.update(
            re.findall(r'"name": "([A-Za-z_][A-Za-z0-9_]*)"', json.dumps(variable["value"]))
        )
    return names


def setting_entries(bicep: dict) -> dict[str, Any]:
    """Every `{name, value}` entry of a template's settings arrays, plain, behind a condition or
    inside a filter(): setting name -> value as pycep gives it (a parameter or variable name, a
    string, or an expression)."""
    found: dict[str, Any] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.keys() == {"name", "value"} and isinstance(node["name"], str):
                found[node["name"]] = node["value"]
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk([variable["value"] for variable in bicep["variables"].values()])
    return found


def is_parameter(bicep: dict, value: Any) -> bool:
    """Whether a pycep value is a reference to one of the template's parameters."""
    return isinstance(value, str) and value in bicep["parameters"]


def local_values() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.json.example").read_text())["Values"]


def local_settings() -> set[str]:
    return set(local_values())


# The example's values that are this MSP's own, not defaults: its HaloPSA, and local storage.
EXAMPLE_PLACEHOLDERS = {"HALO_TENANT", "TAB_FRAME_ORIGINS", "TABLES_CONNECTION_STRING"}


def test_the_local_settings_example_holds_each_settings_default(monkeypatch):
    # The README says to copy it for `func start`: a copy must behave as the documented defaults.
    values = local_values()
    for key in values:
        monkeypatch.delenv(key, raising=False)
    copied = load_settings(**{k.lower(): v for k, v in values.items() if k not in PLATFORM})
    differ = {
        key: (values[key], field.default)
        for key in values
        if (field := Settings.model_fields.get(key.lower())) is not None
        and not field.is_required()
        and key not in EXAMPLE_PLACEHOLDERS
        and getattr(copied, key.lower()) != field.default
    }
    assert not differ, f"the example differs from the defaults: {differ}"


def test_every_bicep_file_parses():
    files = sorted(INFRA.rglob("*.bicep"))
    assert len(files) >= 5
    for path in files:
        assert parsed(path)["resources"] is not None, path


def test_settings_live_in_one_place():
    read = read_settings() - SET_BY_PLATFORM
    infra, local = infra_settings() - {"FC1"}, local_settings()
    assert not SET_BY_PLATFORM & (infra | local)
    assert read - LOCAL_ONLY <= infra, f"missing in infra: {sorted(read - LOCAL_ONLY - infra)}"
    assert read <= local, f"missing in local.settings.json.example: {sorted(read - local)}"
    assert infra - read <= PLATFORM, (
        f"infra sets what nothing reads: {sorted(infra - read - PLATFORM)}"
    )
    assert local - read <= PLATFORM, (
        f"local sets what nothing reads: {sorted(local - read - PLATFORM)}"
    )


def test_no_setting_an_admin_may_change_is_a_literal_in_the_bicep():
    """A literal in api.bicep comes back with every `azd provision`, whatever the admin set: every
    setting but the few fixed on purpose must come from a parameter or an expression."""
    path = INFRA / "app" / "api.bicep"
    source = path.read_text()
    literals = {}
    # pycep finds the settings but gives the symbol `plan` and the string 'plan' alike (api.bicep
    # has a resource named plan), so whether a value is quoted is read from the source.
    for name, value in setting_entries(parsed(path)).items():
        written = re.findall(rf"name: '{re.escape(name)}'\s*\n\s*value: (.+)", source)
        assert len(written) == 1, f"{name}: expected one `name: ... value: ...` entry"
        if written[0].startswith("'") and "${" not in written[0]:
            literals[name] = value
    assert "AzureWebJobsStorage__credential" in literals  # the check sees a literal
    unexpected = sorted(
        name for name, value in literals.items() if FIXED_SETTINGS.get(name) != value
    )
    assert not unexpected, f"hard-coded in api.bicep (make them parameters): {unexpected}"


def test_every_setting_from_a_parameter_is_the_azd_variable_of_its_name():
    """The docs say `azd env set NAME value` then `azd provision` for any app setting NAME: each
    setting api.bicep takes from a parameter is passed down by main.bicep from a parameter that
    main.parameters.json maps from ${NAME}, and every main.bicep parameter is mapped."""
    main = parsed(INFRA / "main.bicep")
    api = parsed(INFRA / "app" / "api.bicep")
    mapped = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert set(mapped) <= set(main["parameters"]), sorted(set(mapped) - set(main["parameters"]))
    unmapped = set(main["parameters"]) - set(mapped) - NOT_FROM_AZD
    assert not unmapped, f"main.bicep parameters azd never sets: {sorted(unmapped)}"
    passed = main["modules"]["api"]["config"]["params"]
    checked = set()
    for setting, value in setting_entries(api).items():
        if setting not in read_settings() or not is_parameter(api, value):
            continue  # platform values, and expressions (the table endpoint, Key Vault references)
        source = passed.get(value)
        assert isinstance(source, str), f"{setting}: main.bicep does not pass {value} to api.bicep"
        # A main.bicep parameter, or a variable built from one (an empty-means-default fallback).
        sources = (
            {source}
            if source in main["parameters"]
            else set(re.findall(r'"(\w+)"', json.dumps(main["variables"][source]["value"])))
        )
        assert any(mapped.get(name, {}).get("value") == f"${{{setting}}}" for name in sources), (
            f"{setting}: not mapped from the azd variable {setting} in main.parameters.json"
        )
        if source in main["parameters"]:
            assert main["parameters"][source].get("default") == api["parameters"][value].get(
                "default"
            ), f"{setting}: main.bicep and api.bicep disagree on the default"
        checked.add(setting)
    assert {"IMMY_TAGS", "IMMY_HALO_LINK_ID", "ASSET_SYNC", "HALO_READ_MODE"} <= checked


def test_the_readme_lists_the_settings_an_admin_may_change():
    """README's "Settings in Azure" names exactly the settings api.bicep takes from an admin's
    parameter and leaves out when empty (`adminSettings`)."""
    api = parsed(INFRA / "app" / "api.bicep")
    admin = set(setting_entries({"variables": {"a": api["variables"]["adminSettings"]}}))
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Settings in Azure", 1)[1].split("\n## ", 1)[0]
    (row,) = [line for line in section.splitlines() if "a parameter each" in line]
    listed = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0]))
    assert listed == admin, (sorted(admin - listed), sorted(listed - admin))


def test_the_bicep_defaults_are_the_apps_defaults():
    """Unset, a setting is left out and the app's default applies; deployed without azd, the
    parameter's default is written: both must be the same value."""
    api = parsed(INFRA / "app" / "api.bicep")
    required = {
        "halo_base_url": "https://msp.halopsa.com",
        "halo_client_id": "client-1",
        "halo_client_secret": "secret",
        "tables_connection_string": "UseDevelopmentStorage=true",
        "tables_endpoint": None,
    }
    for setting, value in setting_entries(api).items():
        field = setting.lower()
        if field not in Settings.model_fields or not is_parameter(api, value):
            continue
        if api["parameters"][value].get("default") is None:
            continue  # required: the admin gives it
        default, expected = (
            api["parameters"][value]["default"],
            Settings.model_fields[field].default,
        )
        if default == "":
            assert expected in (None, ""), (
                f"{setting}: the Bicep default is empty, the app's is {expected!r}"
            )
            continue
        loaded = getattr(load_settings(**{**required, field: default}), field)
        assert loaded == expected, f"{setting}: Bicep default {default!r}, app default {expected!r}"


def test_roles_key_vault_references_and_transport_security():
    rbac = json.dumps(parsed(INFRA / "app" / "rbac.bicep"))
    for role in (
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "4633458b-17de-408a-b874-0445c86b69e6",  # Key Vault Secrets User
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    ):
        assert role in rbac
    api = parsed(INFRA / "app" / "api.bicep")
    settings = json.dumps(api["variables"])
    for secret, name in (
        ("HALO_CLIENT_SECRET", "halo-client-secret"),
        ("IMMY_CLIENT_SECRET", "immy-client-secret"),
        ("HALO_WEBHOOK_SECRET", "halo-webhook-secret"),
    ):
        reference = rf"@Microsoft\.KeyVault\(SecretUri=\$\{{keyVaultUri\}}secrets/{name}/\)"
        assert re.search(rf'"name": "{secret}", "value": "{reference}"', settings), secret
    site = api["resources"]["site"]["config"]["properties"]
    assert site["httpsOnly"] is True
    assert site["keyVaultReferenceIdentity"] == "identityId"
    assert site["siteConfig"]["minTlsVersion"] == "1.2"
    assert site["siteConfig"]["ftpsState"] == "Disabled"
    assert site["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    plan = api["resources"]["plan"]["config"]["sku"]
    assert plan == {"name": "FC1", "tier": "FlexConsumption"}
    storage = parsed(INFRA / "app" / "storage.bicep")
    account = next(
        r for r in storage["resources"].values() if r["type"] == "Microsoft.Storage/storageAccounts"
    )
    assert account["config"]["properties"]["allowSharedKeyAccess"] is False
    assert account["config"]["properties"]["minimumTlsVersion"] == "TLS1_2"
    monitoring = json.dumps(parsed(INFRA / "app" / "monitoring.bicep"))
    assert '"DisableLocalAuth": true' in monitoring
    keyvault = json.dumps(parsed(INFRA / "app" / "keyvault.bicep"))
    assert '"enableRbacAuthorization": true' in keyvault
    assert "halo-webhook-secret" in keyvault
    assert (ROOT / "azure.yaml").read_text().count("host: function") == 1


def test_telemetry_is_off_and_not_imported_without_a_connection_string(monkeypatch):
    monkeypatch.delitem(sys.modules, "azure.monitor.opentelemetry", raising=False)
    assert configure_telemetry({}) is False
    assert "azure.monitor.opentelemetry" not in sys.modules


def test_telemetry_uses_the_managed_identity_for_entra_only_ingestion(monkeypatch):
    import azure.monitor.opentelemetry as distro

    calls = []
    monkeypatch.setattr(distro, "configure_azure_monitor", lambda **kwargs: calls.append(kwargs))
    environ = {
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=abc-123;Authorization=AAD",
    }
    assert configure_telemetry(environ) is True
    (options,) = calls
    assert options["connection_string"] == environ["APPLICATIONINSIGHTS_CONNECTION_STRING"]
    assert options["logger_name"] == "halo_immy"
    assert type(options["credential"]).__name__ == "ManagedIdentityCredential"


def test_every_api_call_is_one_structured_line_without_values(configure, caplog):
    configure("https://msp.halopsa.com")
    caplog.set_level(logging.INFO, logger="halo_immy.http")
    request = func.HttpRequest(
        "GET",
        "/api/targets",
        body=b"",
        params={"software": "Secret Customer Name", "code": "key-123"},
    )
    handler("targets")(request)
    lines = [json.loads(r.getMessage()) for r in caplog.records if '"api_call"' in r.getMessage()]
    assert len(lines) == 1
    line = lines[0]
    assert line["event"] == "api_call" and line["service"] == "targets"
    assert line["status"] == 503 and line["params"] == ["software"]
    assert isinstance(line["ms"], float)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "Secret Customer Name" not in text and "key-123" not in text


def test_powershell_example_reads_only_what_the_api_answers():
    """pwsh cannot be installed here: check the script's JSON members against the OpenAPI schema."""
    from shared.api.openapi import openapi_document

    script = (ROOT / "docs" / "examples" / "Get-HaloImmyTargets.ps1").read_text()
    members = set(re.findall(r"Get-JsonMember \$\w+ '(\w+)'", script))
    assert {
        "software",
        "generation",
        "synced_at",
        "targets",
        "unmapped",
        "immy_tenant_id",
    } <= members
    schemas = openapi_document()["components"]["schemas"]
    known = set()
    for name in ("TargetsResponse", "Target", "TargetCounts", "UnmappedClient", "Quantities"):
        known |= set(schemas[name]["properties"])
    assert members <= known, sorted(members - known)
    # A calculated quantity HaloPSA has not invoiced yet is null: the script must take null.
    quantity = schemas["Target"]["properties"]["quantity"]
    assert {"type": "null"} in quantity["anyOf"]
    assert "$null -ne $quantity" in script
    assert {"quantities", "calculated_unknown"} <= members
    assert "x-functions-key" in script
    assert "$ErrorActionPreference = 'Stop'" in script
    # Every failure path throws (Stop-Targets) rather than returning an empty list.
    assert script.count("Stop-Targets") > 15
    assert re.search(r"return\s+@\(\)", script) is None


@pytest.mark.parametrize("doc", ["halopsa-setup.md", "immybot-setup.md", "operations.md"])
def test_docs_exist_and_name_the_routes_they_document(doc):
    text = (ROOT / "docs" / doc).read_text()
    assert len(text) > 2000
    if doc == "operations.md":
        assert "/api/sync/approve" in text and "SYNC_MAX_DROP" in text
        assert "/api/setup/check" in text and "make check" in text
    if doc == "halopsa-setup.md":
        assert "$FAULTID" in text and "TAB_FRAME_ORIGINS" in text
