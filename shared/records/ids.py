"""Ids as the vendors write them: HaloPSA numbers as integers (it writes one id as 21, 21.0 or
"21.0", depending on the endpoint), and Microsoft Entra tenant ids as one canonical GUID text."""

from __future__ import annotations

import re
import uuid
from typing import Any

_WHOLE = re.compile(r"-?[0-9]+(?:\.0*)?", re.ASCII)


def whole_number(value: Any) -> int | None:
    """`value` as an int when it is a whole number (int, integral float, "21", "-94.0"), else None.

    A boolean is not a number here, though Python counts it as one.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip().split(".", 1)[0])
    return None


def reported_count(value: Any) -> int | None:
    """A count or size HaloPSA reported (`record_count`, `page_size`): a number >= 0, else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    return None


def entra_tenant_id(value: Any) -> str | None:
    """A Microsoft Entra tenant id in one form (lower case, hyphenated), or None.

    Both vendors hold the id as free text (HaloPSA `AreaAzureTenant.AATAzureTenantId`,
    nvarchar(100); ImmyBot `azTenantId`, a nullable string), so its case and braces vary by who
    typed it. Anything that is not a GUID, and the all-zero GUID a half-made link leaves, is None:
    such a value identifies nobody and must never pair two records.
    """
    if not isinstance(value, str) or len(value) > 100:
        return None
    try:
        parsed = uuid.UUID(value.strip())
    except ValueError:
        return None
    return None if parsed.int == 0 else str(parsed)
