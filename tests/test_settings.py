"""Settings fail fast, name the bad key, and never echo a value."""

from __future__ import annotations

import pytest

from shared.runtime.process import get_settings
from shared.settings import DEFAULT_SYNC_SCHEDULE, SettingsError, load_settings

SECRET = "very-secret-value-123"
GOOD = {
    "HALO_BASE_URL": "https://msp.halopsa.com/",
    "HALO_CLIENT_ID": "client-1",
    "HALO_CLIENT_SECRET": SECRET,
    "TABLES_CONNECTION_STRING": "UseDevelopmentStorage=true",
}


@pytest.fixture
def env(monkeypatch):
    for key in [
        *GOOD,
        "HALO_TENANT",
        "HALO_SCOPE",
        "HALO_REQUESTS_PER_MINUTE",
        "HALO_PAGE_SIZE",
        "HALO_TIMEOUT_SECONDS",
        "HALO_READ_MODE",
        "HALO_BACKOFF_429_SECONDS",
        "TABLES_ENDPOINT",
        "SYNC_SCHEDULE",
        "HALO_WEBHOOK_SECRET",
    ]:
        monkeypatch.delenv(key, raising=False)

    def apply(**values: str) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, value)

    get_settings.cache_clear()
    yield apply
    get_settings.cache_clear()


def error_for(**values: str) -> SettingsError:
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return caught.value


def test_complete_settings_load_with_defaults(env):
    env(**GOOD)
    settings = get_settings()
    assert settings.halo_base == "https://msp.halopsa.com"
    assert settings.halo_origin == "https://msp.halopsa.com"
    assert settings.halo_scope == "all"
    assert settings.halo_tenant is None
    assert settings.sync_schedule == DEFAULT_SYNC_SCHEDULE
    assert 0 < settings.halo_requests_per_minute < 60  # under hosted HaloPSA's 300 per 5 minutes
    assert settings.halo_backoff_429_seconds == 30  # HaloPSA's 429s carry no Retry-After
    assert settings.halo_client_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    assert get_settings() is settings
    assert (settings.immy_tags, settings.immy_tag_prefix, settings.immy_stale_days) == (
        "plan",
        "Halo: ",
        30,
    )


def test_the_tag_prefix_keeps_its_trailing_space(env):
    env(**GOOD, IMMY_TAG_PREFIX="Billed: ")
    assert get_settings().immy_tag_prefix == "Billed: "


def test_missing_settings_are_all_named(env):
    env(HALO_BASE_URL="https://msp.halopsa.com")
    error = error_for()
    assert error.problems == {
        "HALO_CLIENT_ID": "is missing",
        "HALO_CLIENT_SECRET": "is missing",
        "TABLES_CONNECTION_STRING / TABLES_ENDPOINT": "exactly one of them must be set",
    }
    assert "HALO_CLIENT_ID: is missing" in str(error)


def test_missing_storage_is_named(env):
    env(**{k: v for k, v in GOOD.items() if k != "TABLES_CONNECTION_STRING"})
    error = error_for()
    assert error.problems == {
        "TABLES_CONNECTION_STRING / TABLES_ENDPOINT": "exactly one of them must be set"
    }


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("HALO_BASE_URL", "http://msp.halopsa.com", "https://"),
        ("HALO_BASE_URL", "not a url", "URL"),
        ("HALO_BASE_URL", "https://msp.halopsa.com/?x=1", "without query"),
        ("HALO_REQUESTS_PER_MINUTE", "0", "greater than 0"),
        ("HALO_PAGE_SIZE", "100000", "less than or equal to 1000"),
        ("HALO_BACKOFF_429_SECONDS", "-1", "greater than or equal to 0"),
        ("HALO_BACKOFF_429_SECONDS", "soon", "number"),
        ("SYNC_SCHEDULE", "*/15 * * * *", "six-field"),
        ("IMMY_TAGS", "yes", "'off', 'plan' or 'apply'"),
        ("IMMY_STALE_DAYS", "0", "greater than or equal to 1"),
        ("HALO_WEBHOOK_SECRET", "short-secret", "at least 24 characters"),
    ],
)
def test_malformed_setting_is_named_with_the_reason(env, key, value, expected):
    env(**{**GOOD, key: value})
    error = error_for()
    assert list(error.problems) == [key]
    assert expected in error.problems[key]


def test_loopback_may_use_plain_http(env):
    env(**{**GOOD, "HALO_BASE_URL": "http://127.0.0.1:8089"})
    assert load_settings().halo_base == "http://127.0.0.1:8089"


def test_exactly_one_storage_source(env):
    env(**{**GOOD, "TABLES_ENDPOINT": "https://acct.table.core.windows.net"})
    assert "exactly one" in str(error_for())
    env(
        **{
            **GOOD,
            "TABLES_CONNECTION_STRING": "",
            "TABLES_ENDPOINT": "https://a.table.core.windows.net",
        }
    )
    settings = load_settings()
    assert settings.tables_connection_string is None
    assert str(settings.tables_endpoint) == "https://a.table.core.windows.net/"


def test_unresolved_key_vault_reference_is_reported_as_such(env):
    reference = "@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/halo/)"
    env(**{**GOOD, "HALO_CLIENT_SECRET": reference})
    error = error_for()
    assert list(error.problems) == ["HALO_CLIENT_SECRET"]
    assert "unresolved Key Vault reference" in str(error)
    assert "kv.vault.azure.net" not in str(error)


def test_no_value_is_echoed_in_errors(env):
    env(**{**GOOD, "HALO_CLIENT_SECRET": SECRET, "HALO_PAGE_SIZE": SECRET})
    error = error_for()
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert error.__cause__ is None and error.__suppress_context__


def test_the_webhook_is_off_unless_its_secret_is_set(env):
    env(**{**GOOD, "HALO_WEBHOOK_SECRET": ""})
    assert load_settings().halo_webhook_secret is None
    env(**{**GOOD, "HALO_WEBHOOK_SECRET": "w" * 24})
    secret = load_settings().halo_webhook_secret
    assert secret is not None and secret.get_secret_value() == "w" * 24
    env(**{**GOOD, "HALO_WEBHOOK_SECRET": "short-and-secret"})
    assert "short-and-secret" not in str(error_for())


def test_every_problem_is_named_in_one_pass(env):
    # Field errors, an unresolved reference and every cross-setting group together: before,
    # each group hid the next, so an admin fixed them in as many rounds.
    env(
        HALO_BASE_URL="https://msp.halopsa.com",
        HALO_TENANT="@Microsoft.KeyVault(SecretUri=https://kv.vault.azure.net/secrets/t/)",
        HALO_PAGE_SIZE="5",
        IMMY_BASE_URL="https://msp.immy.bot",
        ASSET_SYNC="plan",
        ASSET_TYPE_ID="7",
    )
    error = error_for()
    assert set(error.problems) == {
        "HALO_CLIENT_ID",
        "HALO_CLIENT_SECRET",
        "HALO_TENANT",
        "HALO_PAGE_SIZE",
        "IMMY_TENANT_ID",
        "IMMY_CLIENT_ID",
        "IMMY_CLIENT_SECRET",
        "ASSET_NAME_FIELD",
        "ASSET_ID_FIELD",
        "ASSET_MARKER_FIELD",
        "TABLES_CONNECTION_STRING / TABLES_ENDPOINT",
    }
    assert "unresolved Key Vault reference" in error.problems["HALO_TENANT"]
    # The message a failed sync carries (and the host logs at its first use) names them all.
    for key in error.problems:
        assert f"{key}: " in str(error)


def test_asset_fields_that_coincide_are_named_beside_other_problems(env):
    env(
        **{k: v for k, v in GOOD.items() if k != "HALO_CLIENT_SECRET"},
        ASSET_SYNC="apply",
        ASSET_TYPE_ID="7",
        ASSET_NAME_FIELD="101",
        ASSET_ID_FIELD="101",
        ASSET_MARKER_FIELD="151",
    )
    problems = error_for().problems
    assert set(problems) == {"HALO_CLIENT_SECRET", "ASSET_*_FIELD"}
