"""Pydantic models of the ImmyBot records the app reads (lenient: unknown fields ignored).

Field names follow ImmyBot's API as public clients model it (s-nix/PSImmyBot `Models/`, which mirror
the API's JSON; n8layer/n8n-nodes-immybot): tenants from `GET /api/v1/tenants`, computers from
`GET /api/v1/computers/paged` (`{"count", "results"}`). Older instances sent `name`/`online`/
`updatedDate` on computers and `msp` on tenants; those are accepted too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator


class _Immy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ImmyTenant(_Immy):
    """A tenant (an MSP customer) in ImmyBot. Relied on: id, name, active, isMsp."""

    id: int = Field(gt=0)
    name: str = ""
    active: bool = True
    is_msp: bool = Field(default=False, validation_alias=AliasChoices("isMsp", "msp", "is_msp"))


class ImmyComputer(_Immy):
    """A computer in ImmyBot.

    Relied on: id, computerName, tenantId, isOnline, lastProviderAgentEventDateUtc (used as "last
    seen"), primaryUserEmail (matches the ticket's end user), serialNumber.
    """

    id: int = Field(gt=0)
    name: str = Field(default="", validation_alias=AliasChoices("computerName", "name"))
    tenant_id: int = Field(validation_alias=AliasChoices("tenantId", "tenant_id"))
    online: bool | None = Field(default=None, validation_alias=AliasChoices("isOnline", "online"))
    last_seen: datetime | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "lastProviderAgentEventDateUtc", "lastSeen", "updatedDate", "last_seen"
        ),
    )
    primary_user_email: str = Field(
        default="", validation_alias=AliasChoices("primaryUserEmail", "primary_user_email")
    )
    serial: str = Field(default="", validation_alias=AliasChoices("serialNumber", "serial"))

    @field_validator("primary_user_email", "serial", "name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("last_seen", mode="before")
    @classmethod
    def _no_date(cls, value: Any) -> Any:
        if isinstance(value, str) and (not value.strip() or value.startswith("0001-01-01")):
            return None
        return value
