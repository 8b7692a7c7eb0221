"""Pydantic models of the ImmyBot records the app reads (lenient: unknown fields ignored).

Field names follow ImmyBot's API as public clients model it (s-nix/PSImmyBot `Models/`, which mirror
the API's JSON; n8layer/n8n-nodes-immybot): tenants from `GET /api/v1/tenants`, computers from
`GET /api/v1/computers/paged` (`{"count", "results"}`), tags from `GET /api/v1/tags`, provider links
and their clients from `GET /api/v1/provider-links[/{id}/clients]`. Older instances sent `name`/`online`/
`updatedDate` on computers and `msp` on tenants; those are accepted too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import AliasChoices, AliasPath, BaseModel, ConfigDict, Field, field_validator

from shared.records.ids import entra_tenant_id


class _Immy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class ImmyTenant(_Immy):
    """A tenant (an MSP customer) in ImmyBot. Relied on: id, name, active, isMsp, and the
    Microsoft Entra tenant it is linked to.

    Where the Entra tenant is: ImmyBot's OpenAPI document (../shared/immybot-openapi/
    `immybot-swagger.json.gz`, and `immybot-api-subset.json`) answers `GET /api/v1/tenants` with
    `GetTenantResponse` objects whose `azureTenantLink` is an `AzureTenantLinkResponse`
    (`immyTenantId`, `azTenantId` a nullable string, `shouldLimitDomains`, `limitToDomains`,
    `azureTenant`); the link is null for a tenant without one. One Entra tenant may be linked to
    several ImmyBot tenants (split by `limitToDomains`), so the id is not unique among tenants.
    """

    id: int = Field(gt=0)
    name: str = ""
    active: bool = True
    is_msp: bool = Field(default=False, validation_alias=AliasChoices("isMsp", "msp", "is_msp"))
    tag_ids: tuple[int, ...] = Field(
        default=(), validation_alias=AliasChoices("tenantTagIds", "tag_ids")
    )
    entra_tenant_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            AliasPath("azureTenantLink", "azTenantId"), "entra_tenant_id"
        ),
    )

    @field_validator("entra_tenant_id", mode="before")
    @classmethod
    def _entra(cls, value: Any) -> Any:
        # Lenient: a link without a usable GUID is no link (the tenant still maps by name).
        return entra_tenant_id(value)

    @field_validator("tag_ids", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return () if value is None else value


class ImmyTag(_Immy):
    """A tag (`GET /api/v1/tags`). The description marks the tags halo-immy manages."""

    id: int = Field(gt=0)
    name: str = ""
    description: str = ""

    @field_validator("name", "description", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value


class ProviderLink(_Immy):
    """An integration of ImmyBot with another system (`GET /api/v1/provider-links`)."""

    id: int = Field(gt=0)
    name: str = ""
    provider_type_id: str = Field(
        default="", validation_alias=AliasChoices("providerTypeId", "provider_type_id")
    )
    disabled: bool = False

    @field_validator("name", "provider_type_id", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)


class ProviderClient(_Immy):
    """One client of a provider link: the external (HaloPSA) client id and the tenant it is
    linked to, if any (`GET /api/v1/provider-links/{id}/clients`)."""

    external_client_id: str = Field(
        validation_alias=AliasChoices("externalClientId", "external_client_id")
    )
    external_client_name: str = Field(
        default="", validation_alias=AliasChoices("externalClientName", "external_client_name")
    )
    linked_to_tenant_id: int | None = Field(
        default=None, validation_alias=AliasChoices("linkedToTenantId", "linked_to_tenant_id")
    )

    @field_validator("external_client_name", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else value


class ImmyComputer(_Immy):
    """A computer in ImmyBot.

    Relied on: id, computerName, tenantId, isOnline, lastProviderAgentEventDateUtc (used as "last
    seen"), primaryUserEmail (matches the ticket's end user), serialNumber, isSandbox, isDevLab
    and excludeFromMaintenance (such a computer is not a deployment target), and computerTagIds
    (the tags it carries: `ComputerListViewModel` in ImmyBot's OpenAPI document).
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
    is_sandbox: bool = Field(
        default=False, validation_alias=AliasChoices("isSandbox", "is_sandbox")
    )
    is_dev_lab: bool = Field(default=False, validation_alias=AliasChoices("isDevLab", "is_dev_lab"))
    excluded: bool = Field(
        default=False, validation_alias=AliasChoices("excludeFromMaintenance", "excluded")
    )
    tag_ids: tuple[int, ...] = Field(
        default=(), validation_alias=AliasChoices("computerTagIds", "tag_ids")
    )

    @property
    def deployable(self) -> bool:
        """Whether ImmyBot would deploy to it: not a sandbox, not dev-lab, not excluded."""
        return not (self.is_sandbox or self.is_dev_lab or self.excluded)

    @field_validator("is_sandbox", "is_dev_lab", "excluded", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        return False if value is None else value

    @field_validator("tag_ids", mode="before")
    @classmethod
    def _no_tags(cls, value: Any) -> Any:
        return () if value is None else value

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


class DetectedSoftware(_Immy):
    """One row of a computer's inventory (`GET /api/v1/computers/{id}/detected-computer-software`).

    Shape: `DetectedComputerSoftwareResponse` in ImmyBot's OpenAPI document (shared/immybot-openapi,
    immy.bot API v1). Relied on: computerId, tenantId, softwareName (the display name), version.
    """

    computer_id: int = Field(validation_alias=AliasChoices("computerId", "computer_id"))
    tenant_id: int | None = Field(
        default=None, validation_alias=AliasChoices("tenantId", "tenant_id")
    )
    name: str = Field(default="", validation_alias=AliasChoices("softwareName", "name"))
    version: str = ""
    detected_at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("detectedAt", "detected_at")
    )

    @field_validator("name", "version", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)


class InventoryRow(_Immy):
    """One computer carrying one software, from ImmyBot's bulk inventory search
    (`GET /api/v1/computers/all-inventory-software/search-by-name`).

    Shape: `ComputerInventoryAllSoftware` in ImmyBot's OpenAPI document (shared/immybot-openapi,
    immy.bot API v1): `computerId`, `tenantId`, `computer`, `tenant`, `softwareName`,
    `softwareVersion`, nothing else. Relied on: computerId, tenantId, softwareName (the display
    name), softwareVersion.
    """

    computer_id: int = Field(validation_alias=AliasChoices("computerId", "computer_id"))
    tenant_id: int | None = Field(
        default=None, validation_alias=AliasChoices("tenantId", "tenant_id")
    )
    name: str = Field(default="", validation_alias=AliasChoices("softwareName", "name"))
    version: str = Field(default="", validation_alias=AliasChoices("softwareVersion", "version"))

    @field_validator("name", "version", mode="before")
    @classmethod
    def _text(cls, value: Any) -> Any:
        return "" if value is None else str(value)
