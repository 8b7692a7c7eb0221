"""Typed settings read from app settings (environment variables), validated once, at first use.

A bad or missing setting raises :class:`SettingsError` naming every offending key, never its value:
app settings hold secrets, and an error message ends up in logs and Application Insights.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AnyHttpUrl,
    Field,
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

    @model_validator(mode="before")
    @classmethod
    def _empty_means_unset(cls, data: Any) -> Any:
        # App settings are often present but empty (a Bicep template writes every name): for an
        # optional setting, empty is the same as absent.
        if isinstance(data, dict):
            optional = {
                name
                for name, info in cls.model_fields.items()
                if not info.is_required() and info.default is None
            }
            return {
                k: v
                for k, v in data.items()
                if not (k in optional and isinstance(v, str) and not v.strip())
            }
        return data

    @model_validator(mode="before")
    @classmethod
    def _reject_key_vault_references(cls, data: Any) -> Any:
        # An unresolved reference arrives as the literal text; catch it before it is used as a
        # secret or URL and give the operator the cause, not a confusing 401 later.
        if isinstance(data, dict):
            unresolved = [
                key
                for key, value in data.items()
                if isinstance(value, str) and value.strip().startswith(KEY_VAULT_PREFIX)
            ]
            if unresolved:
                raise ValueError("KEYVAULT:" + ",".join(sorted(unresolved)))
        return data

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

    @model_validator(mode="after")
    def _immybot_all_or_nothing(self) -> Self:
        given = {
            "IMMY_BASE_URL": self.immy_base_url,
            "IMMY_TENANT_ID": self.immy_tenant_id or None,
            "IMMY_CLIENT_ID": self.immy_client_id or None,
            "IMMY_CLIENT_SECRET": self.immy_client_secret
            if self.immy_client_secret and self.immy_client_secret.get_secret_value()
            else None,
        }
        missing = sorted(k for k, v in given.items() if v is None)
        if missing and len(missing) < len(given):
            raise ValueError("IMMYBOT:" + ",".join(missing))
        return self

    @model_validator(mode="after")
    def _asset_fields_when_on(self) -> Self:
        if self.asset_sync == "off":
            return self
        needed = {
            "ASSET_TYPE_ID": self.asset_type_id,
            "ASSET_NAME_FIELD": self.asset_name_field,
            "ASSET_ID_FIELD": self.asset_id_field,
            "ASSET_MARKER_FIELD": self.asset_marker_field,
        }
        missing = sorted(k for k, v in needed.items() if v is None)
        if missing:
            raise ValueError("ASSETS:" + ",".join(missing))
        fields = [
            f
            for f in (
                self.asset_name_field,
                self.asset_id_field,
                self.asset_marker_field,
                self.asset_serial_field,
            )
            if f is not None
        ]
        if len(set(fields)) != len(fields):
            raise ValueError("ASSETFIELDS:")
        return self

    @model_validator(mode="after")
    def _one_storage_source(self) -> Self:
        conn = self.tables_connection_string
        if conn is not None and not conn.get_secret_value():
            object.__setattr__(self, "tables_connection_string", None)
        if (self.tables_connection_string is None) == (self.tables_endpoint is None):
            raise ValueError("STORAGE:exactly one of them must be set")
        return self

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
    problems: dict[str, str] = {}
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        message = str(item.get("msg", "invalid"))
        if "KEYVAULT:" in message:
            for key in message.split("KEYVAULT:", 1)[1].split(","):
                problems[key.upper()] = (
                    "is an unresolved Key Vault reference: grant the app's identity "
                    "'Key Vault Secrets User' and check the secret URI"
                )
            continue
        if "IMMYBOT:" in message:
            for key in message.split("IMMYBOT:", 1)[1].split(","):
                problems[key] = "is needed too: ImmyBot is configured only when all four are set"
            continue
        if "ASSETS:" in message:
            for key in message.split("ASSETS:", 1)[1].split(","):
                problems[key] = "is needed when ASSET_SYNC is plan or apply"
            continue
        if "ASSETFIELDS:" in message:
            problems["ASSET_*_FIELD"] = "the name, id, marker and serial fields must differ"
            continue
        if "STORAGE:" in message:
            why = message.split("STORAGE:", 1)[1]
            problems["TABLES_CONNECTION_STRING / TABLES_ENDPOINT"] = why
            continue
        loc = item.get("loc") or ("settings",)
        key = str(loc[0]).upper()
        problems[key] = "is missing" if item.get("type") == "missing" else message
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read and validate settings from the environment (overrides win); raise SettingsError."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise SettingsError(_problems(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, validated on first call."""
    return load_settings()
