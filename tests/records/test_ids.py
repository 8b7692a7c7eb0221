"""HaloPSA ids and counts read as integers, whichever way HaloPSA wrote them; Entra tenant ids
read as one canonical GUID text, whichever way an admin typed them."""

from __future__ import annotations

from typing import Any

import pytest

from shared.records.ids import entra_tenant_id, reported_count, whole_number


@pytest.mark.parametrize(
    ("value", "expected"),
    [(21, 21), (-94, -94), (21.0, 21), ("21", 21), (" -94.0 ", -94), ("7.00", 7)],
)
def test_a_whole_number_in_any_of_halos_spellings_is_an_int(value: Any, expected: int) -> None:
    assert whole_number(value) == expected


@pytest.mark.parametrize(
    "value", [True, False, None, 2.5, float("inf"), float("nan"), "", "2.5", "1e2", "+5", "٢", [1]]
)
def test_anything_else_is_no_whole_number(value: Any) -> None:
    assert whole_number(value) is None


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (250, 250), (12.0, 12)])
def test_a_reported_count_is_a_number_not_below_zero(value: Any, expected: int) -> None:
    assert reported_count(value) == expected


@pytest.mark.parametrize("value", [-1, "250", True, None])
def test_a_reported_count_that_is_no_count_is_none(value: Any) -> None:
    assert reported_count(value) is None


NORTHWIND = "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"


@pytest.mark.parametrize(
    "value",
    [
        NORTHWIND,
        NORTHWIND.upper(),
        f"  {NORTHWIND.upper()} ",
        "{" + NORTHWIND + "}",
        NORTHWIND.replace("-", ""),
    ],
)
def test_an_entra_tenant_id_in_any_case_or_spelling_is_one_text(value: Any) -> None:
    assert entra_tenant_id(value) == NORTHWIND


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "   ",
        "00000000-0000-0000-0000-000000000000",
        "{00000000-0000-0000-0000-000000000000}",
        "contoso.onmicrosoft.com",
        NORTHWIND[:-1],
        NORTHWIND + "0",
        f"{NORTHWIND} " * 10,
        42,
        {"azTenantId": NORTHWIND},
    ],
)
def test_no_guid_and_the_zero_guid_are_no_entra_tenant(value: Any) -> None:
    assert entra_tenant_id(value) is None
