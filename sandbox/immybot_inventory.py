"""The ImmyBot sandbox's bulk inventory search: which computers carry software of a given name.

`GET /api/v1/computers/all-inventory-software/search-by-name` as ImmyBot's OpenAPI document
(shared/immybot-openapi, immy.bot API v1) states it: query parameters `q` (string), `tenantId`
(int32, optional) and `searchMode` (`SoftwareTableNameSearchMode`, an int32 enum 0, 1, 2); the
answer is a bare JSON array of `ComputerInventoryAllSoftware` objects, exactly the six properties
`computerId`, `tenantId`, `computer`, `tenant`, `softwareName`, `softwareVersion`
(`additionalProperties: false`), one per computer and software found. The document states no
paging, so the whole answer comes in one response.

What the document does not say, and the sandbox therefore chooses: enum names come from PSImmyBot
(`Models/SoftwareTableNameSearchMode.cs`: Contains = 0, Regex = 1, Traditional = 2; unverified).
Contains (also when `searchMode` is absent) matches `q` anywhere in the display name,
case-insensitively, as SQL Server's default collation compares; Regex runs `q` as a
case-insensitive regular expression (an invalid one is a 400); Traditional has no public
description and is answered as Contains. An empty `q` matches every row. Rows come in tenant,
computer and name order.

The sister endpoint `GET /api/v1/computers/inventory-software/search-by-name` answers
`ComputerInventorySoftware` (`displayName`, `displayVersion`, `upgradeCode`, `computers`: a count
across the whole instance), which says nothing per tenant or computer; the app does not use it, so
the sandbox does not serve it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

SEARCH_MODES = (0, 1, 2)  # Contains, Regex, Traditional (names unverified)
REGEX = 1


class SearchError(ValueError):
    """A query parameter ASP.NET's model binding (or the regex engine) would refuse."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


def inventory_rows(
    detected: Iterable[Any], computers: Mapping[Any, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Every detected-software row as a `ComputerInventoryAllSoftware` object (rows of unknown
    computers left out), in the order the search answers."""
    rows = []
    for row in detected:
        if not isinstance(row, Mapping):
            continue
        computer = computers.get(row.get("computerId"))
        if computer is None:
            continue
        rows.append(
            {
                "computerId": computer.get("id"),
                "tenantId": computer.get("tenantId"),
                "computer": computer.get("computerName"),
                "tenant": computer.get("tenantName"),
                "softwareName": row.get("softwareName"),
                "softwareVersion": row.get("version"),
            }
        )
    rows.sort(
        key=lambda r: (
            r["tenantId"] if isinstance(r["tenantId"], int) else 0,
            r["computerId"] if isinstance(r["computerId"], int) else 0,
            str(r["softwareName"] or "").casefold(),
        )
    )
    return rows


def _whole(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name.lower(), "").strip()
    if raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise SearchError(name, f"The value '{raw}' is not valid for {name}.") from None


def search(rows: Iterable[Mapping[str, Any]], query: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows `q`, `tenantId` and `searchMode` select; SearchError for a bad parameter."""
    mode = _whole(query, "searchMode")
    if mode is not None and mode not in SEARCH_MODES:
        raise SearchError("searchMode", f"The value '{mode}' is not valid for searchMode.")
    tenant = _whole(query, "tenantId")
    wanted = query.get("q", "")
    if mode == REGEX:
        try:
            pattern = re.compile(wanted, re.IGNORECASE)
        except re.error:
            raise SearchError("q", "q is not a valid regular expression.") from None
        found = [r for r in rows if pattern.search(str(r.get("softwareName") or ""))]
    else:
        folded = wanted.casefold()
        found = [r for r in rows if folded in str(r.get("softwareName") or "").casefold()]
    return [dict(r) for r in found if tenant is None or r.get("tenantId") == tenant]
