"""Typed settings read from app settings (environment variables), validated once, at first use.

A bad or missing setting raises :class:`SettingsError` naming every offending key, never its value:
app settings hold secrets, and an error message ends up in logs and Application Insights.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
    ModelWrapValidatorHandler,
    SecretStr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

KEY_VAULT_PREFIX = "@Microsoft.KeyVault("
DEFAULT_SYNC_SCHEDULE = "0 */15 * * * *"

# Hosted HaloPSA answers 429 past 300 requests per rolling 5 minutes (60 a minute); stay well under
# it so an interactive user of the same API application is not starved by a sync.
DEFAULT_HALO_REQUESTS_PER_MINUTE = 50.0
# 20 minutes of reading leaves 10 of host.json's 30-minute functionTimeout for writing the
# generation, ImmyBot tags and asset population.
DEFAULT_SYNC_TIME_LIMIT_SECONDS = 1200
# Anyone who can reach the app may try the webhook's credential: a short one is guessable.
MIN_WEBHOOK_SECRET = 24


class SettingsError(RuntimeError):
    """App settings are missing or malformed; the message names them, never their values."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(sorted(problems.items()))
        lines = "; ".join(f"{key}: {why}" for key, why in self.problems.items())
        super().__init__(f"invalid app settings: {lines}")


def is_loopback(host: str | None) -> bool:
    """Whether `host` names this machine (localhost or a loopback address)."""
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


NonEmpty = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True, slots=True)
class ImmySettings:
    """ImmyBot's part of the settings, present only when ImmyBot is configured."""

    base_url: str
    tenant_id: str
    client_id: str
    client_secret: SecretStr
    scope: str
    authority_host: str


class Settings(BaseSettings):
    """Every setting the app reads. Environment variable names are the field names upper-cased."""

    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, str_strip_whitespace=True
    )

    halo_base_url: AnyHttpUrl
    halo_tenant: str | None = None
    halo_client_id: NonEmpty
    halo_client_secret: SecretStr
    halo_scope: NonEmpty = "all"
    halo_requests_per_minute: float = Field(default=DEFAULT_HALO_REQUESTS_PER_MINUTE, gt=0)
    halo_page_size: int = Field(default=100, ge=10, le=1000)
    halo_timeout_seconds: float = Field(default=30.0, gt=0, le=120)
    # How a sync reads HaloPSA: SQL reports (a handful of requests), REST pages, or auto: reports
    # when HaloPSA runs them for this API application (shared.halo.report), else REST.
    halo_read_mode: Literal["auto", "report", "rest"] = "auto"
    # HaloPSA answers 429 without Retry-After; shorter pauses only earn more 429s (its window is
    # 5 minutes). Lowered only by benchmarks and tests against the sandbox.
    halo_backoff_429_seconds: float = Field(default=30.0, ge=0, le=600)
    # The credential HaloPSA's outbound webhook sends (Basic password or Bearer token) to
    # POST /api/halo/events: its own secret, never a function key. Unset: the route answers 404.
    halo_webhook_secret: SecretStr | None = None

    tables_connection_string: SecretStr | None = None
    tables_endpoint: AnyHttpUrl | None = None
    tables_prefix: str = Field(default="", pattern=r"^[A-Za-z0-9]{0,20}$")

    immy_base_url: AnyHttpUrl | None = None
    immy_tenant_id: str | None = None
    immy_client_id: str | None = None
    immy_client_secret: SecretStr | None = None
    immy_scope: str | None = None
    immy_authority_host: AnyHttpUrl = AnyHttpUrl("https://login.microsoftonline.com")
    immy_tags: Literal["off", "plan", "apply"] = Field(
        default="plan",
        description="Keep a tag per rule in ImmyBot: off, plan (record only), apply.",
    )
    # Not stripped: the prefix's trailing space separates it from the software name.
    immy_tag_prefix: Annotated[str, StringConstraints(strip_whitespace=False, max_length=40)] = (
        "Halo: "
    )
    immy_halo_link_id: int | None = Field(default=None, gt=0)
    immy_stale_days: int = Field(default=30, ge=1, le=3650)

    tab_frame_origins: str = Field(
        default="", description="Origins allowed to frame the tab; empty: the HaloPSA origin."
    )
    tab_allowed_group: str | None = None
    # App Service sets WEBSITE_AUTH_ENABLED=True when App Service Authentication is on; only then
    # does the platform strip a client's own X-MS-CLIENT-PRINCIPAL and set the real one. Unset
    # (or empty) means off.
    website_auth_enabled: bool | None = None
    # App Service sets WEBSITE_HOSTNAME to the app's default host name (<app>.azurewebsites.net);
    # the setup check builds the Custom Tab URL from it when no request names the host.
    website_hostname: str | None = None
    tab_halo_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    # One deadline for everything the tab reads live (the ticket, the tenant's computers).
    tab_deadline_ms: int = Field(default=800, ge=50, le=30_000)

    sync_schedule: NonEmpty = DEFAULT_SYNC_SCHEDULE
    sync_max_drop: float = Field(default=0.3, ge=0, le=1)
    sync_confirm_by_repeat: bool = False
    # How long a run may read HaloPSA before it stops as `resumable` (pages it read are staged for
    # the next run). Below host.json's functionTimeout (30 minutes) with room for the write.
    sync_time_limit_seconds: int = Field(default=DEFAULT_SYNC_TIME_LIMIT_SECONDS, ge=10, le=86_400)
    # How long the change log (who became or stopped being a target, and why) keeps a change; the
    # sync's retention step drops older days. At most a year: GET /api/changes reads it back.
    changes_keep_days: int = Field(default=90, ge=1, le=366)

    # Asset population (shared.sync.assets): HaloPSA field ids are tenant configuration, so every id
    # is a setting; docs/halopsa-setup.md says where to read them.
    asset_sync: Literal["off", "plan", "apply"] = "off"
    asset_type_id: int | None = Field(default=None, gt=0)
    asset_name_field: int | None = Field(default=None, gt=0)
    asset_id_field: int | None = Field(default=None, gt=0)
    asset_marker_field: int | None = Field(default=None, gt=0)
    asset_serial_field: int | None = Field(default=None, gt=0)
    asset_update_matched: bool = False
    asset_max_creates: int = Field(default=200, ge=0)
    asset_write_batch: int = Field(default=25, ge=1, le=100)

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem_at_once(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Field checks and the checks across settings run side by side on the raw values, and
        # one SettingsError names them all: an admin fixes every setting in one round, not one
        # group per restart.
        if not isinstance(data, dict):
            return handler(data)
        data = _without_empty_optionals(data, cls.model_fields)
        unresolved = _unresolved_references(data)
        problems = _across_settings(data) | unresolved
        try:
            settings = handler({k: v for k, v in data.items() if k.upper() not in unresolved})
        except ValidationError as error:
            raise SettingsError({**_problems(error), **problems}) from None
        if problems:
            raise SettingsError(problems)
        return settings

    @field_validator("halo_base_url")
    @classmethod
    def _https_unless_loopback(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if url.scheme != "https" and not is_loopback(url.host):
            raise ValueError("must be an https:// URL (plain http is allowed for loopback only)")
        if url.query or url.fragment:
            raise ValueError("must be the instance's base URL, without query or fragment")
        return url

    @field_validator("immy_base_url", "immy_authority_host")
    @classmethod
    def _immy_https(cls, url: AnyHttpUrl | None) -> AnyHttpUrl | None:
        if url is not None and url.scheme != "https" and not is_loopback(url.host):
            raise ValueError("must be an https:// URL (plain http is allowed for loopback only)")
        return url

    @field_validator("halo_webhook_secret")
    @classmethod
    def _strong_webhook_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is not None and len(secret.get_secret_value()) < MIN_WEBHOOK_SECRET:
            raise ValueError(f"must be at least {MIN_WEBHOOK_SECRET} characters (a random string)")
        return secret

    @field_validator("halo_tenant")
    @classmethod
    def _empty_tenant_is_none(cls, tenant: str | None) -> str | None:
        return tenant or None

    @field_validator("tab_frame_origins")
    @classmethod
    def _origins(cls, value: str) -> str:
        for origin in value.replace(",", " ").split():
            parts = urlsplit(origin)
            if (
                parts.scheme not in ("http", "https")
                or not parts.netloc
                or parts.path not in ("", "/")
            ):
                raise ValueError(
                    "must be origins like https://yourmsp.halopsa.com, space-separated"
                )
            if parts.scheme == "http" and not is_loopback(parts.hostname):
                raise ValueError("plain http origins are allowed for loopback only")
        return value

    @field_validator("tab_allowed_group")
    @classmethod
    def _group_id(cls, value: str | None) -> str | None:
        if value and not re.fullmatch(r"[0-9a-fA-F-]{36}", value):
            raise ValueError("must be an Entra group object id (a GUID)")
        return value or None

    @field_validator("sync_schedule")
    @classmethod
    def _six_field_ncrontab(cls, schedule: str) -> str:
        if len(schedule.split()) != 6:
            raise ValueError("must be a six-field NCRONTAB expression, e.g. '0 */15 * * * *'")
        return schedule

    @property
    def halo_base(self) -> str:
        """The HaloPSA base URL without a trailing slash."""
        return str(self.halo_base_url).rstrip("/")

    @property
    def immybot(self) -> ImmySettings | None:
        """ImmyBot's settings, or None when ImmyBot is not configured (it is optional)."""
        if self.immy_base_url is None or self.immy_client_secret is None:
            return None
        base = str(self.immy_base_url).rstrip("/")
        return ImmySettings(
            base_url=base,
            tenant_id=self.immy_tenant_id or "",
            client_id=self.immy_client_id or "",
            client_secret=self.immy_client_secret,
            scope=self.immy_scope or f"{base}/.default",
            authority_host=str(self.immy_authority_host).rstrip("/"),
        )

    @property
    def frame_origins(self) -> list[str]:
        """The origins allowed to frame the technician tab."""
        given = [o.rstrip("/") for o in self.tab_frame_origins.replace(",", " ").split()]
        return given or [self.halo_origin]

    @property
    def halo_origin(self) -> str:
        """scheme://host[:port] of the HaloPSA instance."""
        parts = urlsplit(self.halo_base)
        return f"{parts.scheme}://{parts.netloc}"


def _problems(error: ValidationError) -> dict[str, str]:
    """The settings a validation error names, each with why (never its value)."""
    problems: dict[str, str] = {}
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = item.get("loc") or ("settings",)
        key = str(loc[0]).upper()
        problems[key] = "is missing" if item.get("type") == "missing" else str(item["msg"])
    return problems


# -- checks on the raw values, beside the field checks ----------------------------------------
# They read what the environment holds, so they run even when a field of their own is malformed
# (and say nothing of that field: its own check does).


def _given(data: Mapping[str, Any], name: str) -> bool:
    value = data.get(name)
    return value is not None and not (isinstance(value, str) and not value.strip())


def _without_empty_optionals(data: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """App settings are often present but empty (a Bicep template writes every name): for an
    optional setting, empty is the same as absent."""
    optional = {
        name for name, info in fields.items() if not info.is_required() and info.default is None
    }
    return {
        k: v
        for k, v in data.items()
        if not (k in optional and isinstance(v, str) and not v.strip())
    }


def _unresolved_references(data: Mapping[str, Any]) -> dict[str, str]:
    """Settings still holding `@Microsoft.KeyVault(...)`: caught before one is used as a secret
    or URL, so the operator gets the cause, not a confusing 401 later."""
    return {
        key.upper(): "is an unresolved Key Vault reference: grant the app's identity "
        "'Key Vault Secrets User' and check the secret URI"
        for key, value in data.items()
        if isinstance(value, str) and value.strip().startswith(KEY_VAULT_PREFIX)
    }


def _across_settings(data: Mapping[str, Any]) -> dict[str, str]:
    """Every rule that spans several settings, each broken one named."""
    problems: dict[str, str] = {}
    immybot = ["immy_base_url", "immy_tenant_id", "immy_client_id", "immy_client_secret"]
    missing = [name for name in immybot if not _given(data, name)]
    if 0 < len(missing) < len(immybot):
        for name in missing:
            problems[name.upper()] = (
                "is needed too: ImmyBot is configured only when all four are set"
            )
    if str(data.get("asset_sync", "off")).strip() in ("plan", "apply"):
        problems |= _asset_problems(data)
    if _given(data, "tables_connection_string") == _given(data, "tables_endpoint"):
        problems["TABLES_CONNECTION_STRING / TABLES_ENDPOINT"] = "exactly one of them must be set"
    return problems


def _asset_problems(data: Mapping[str, Any]) -> dict[str, str]:
    needed = ["asset_type_id", "asset_name_field", "asset_id_field", "asset_marker_field"]
    problems = {
        name.upper(): "is needed when ASSET_SYNC is plan or apply"
        for name in needed
        if not _given(data, name)
    }
    fields = ["asset_name_field", "asset_id_field", "asset_marker_field", "asset_serial_field"]
    # Compared as numbers where they are numbers ("101" and " 101" are one field); a value that
    # is no number is the field check's to name.
    ids = [int(v) for v in (str(data.get(f, "")).strip() for f in fields) if v.isdigit()]
    if len(set(ids)) != len(ids):
        problems["ASSET_*_FIELD"] = "the name, id, marker and serial fields must differ"
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings from the environment (overrides win); raise SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_problems(error)) from None
