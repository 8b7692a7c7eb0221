"""ImmyBot tenants read as `GET /api/v1/tenants` answers them (GetTenantResponse in ImmyBot's
OpenAPI document, ../shared/immybot-openapi/)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.records.immybot import ImmyTenant

NORTHWIND = "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"


def tenant(link: Any) -> dict[str, Any]:
    return {"id": 4, "name": "Northwind Traders", "active": True, "isMsp": False,
            "azureTenantLink": link}  # fmt: skip


def test_the_entra_tenant_is_read_from_the_azure_tenant_link():
    link = {
        "immyTenantId": 4,
        "azTenantId": NORTHWIND.upper(),
        "shouldLimitDomains": False,
        "limitToDomains": [],
        "azureTenant": {"principalId": NORTHWIND.upper(), "azureTenantType": 1},
    }
    read = ImmyTenant.model_validate(tenant(link))
    assert read.entra_tenant_id == NORTHWIND
    # Stored by field name, read back as it was.
    assert ImmyTenant.model_validate_json(read.model_dump_json()) == read


@pytest.mark.parametrize(
    "link",
    [
        None,
        {},
        {"azTenantId": None},
        {"azTenantId": ""},
        {"azTenantId": "00000000-0000-0000-0000-000000000000"},
        {"azTenantId": "northwind.onmicrosoft.com"},
        "not an object",
    ],
)
def test_a_tenant_without_a_usable_link_has_no_entra_tenant(link):
    assert ImmyTenant.model_validate(tenant(link)).entra_tenant_id is None
