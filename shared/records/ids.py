"""HaloPSA numbers as integers: it writes one id as 21, 21.0 or "21.0", depending on the endpoint."""

from __future__ import annotations

import re
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
