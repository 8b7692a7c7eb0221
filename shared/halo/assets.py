"""HaloPSA assets and users as asset population reads and writes them.

Reads are one paged listing each (`GET /api/Asset`, `GET /api/Users`), never one per client; writes
are `POST /api/Asset` with a JSON array body, several assets per request. Everything goes through
the run's `HaloClient`, so it shares the sync's request budget, token and statistics.

Facts relied on, and where they come from:
- `GET /api/Asset` takes `includeinactive`, `includeassetfields`, `includeuser`, `assettype_id`,
  `pageinate`, `page_size`, `page_no` (Halo's OpenAPI document, `/Asset` GET parameters:
  ../shared/halo-openapi/halo-api-subset.json). Rows are `Device_List`: `id`, `client_id`,
  `site_id`, `assettype_id`, `key_field` (the value of the asset type's key field 1),
  `inactive`, `fields` (FieldHelper: `id`, `name`, `value`, `display`).
- `fields` is only sent with `includeassetfields=true` (an asset-label printer's client against a
  live tenant, [unnamed] public source). One author found fields only when the listing is also
  filtered on `assettype_id` (martroben/rmm_halo_asset_sync, legacy/halo_assets.py, noted in
  asset-create-request.shape.json): when rows of the app's asset type come back without `fields`,
  a second listing filtered on that type fills them in, so matching by the ImmyBot id never
  silently fails.
- A live tenant capped the asset page size (asked for 200, answered `page_size` 50; same
  asset-label printer source), so this pager trusts `record_count`, never a short page alone.
- `POST /api/Asset` takes an array of Device objects: without `id` it creates, with `id` it
  updates (martroben's notes); an update carrying only `fields: [{id, value}]` leaves the other
  fields alone (the asset-label printer's only write is `[{"id": .., "fields": [{"id": ..,
  "value": "0"}]}]`). `site_id` alone places the asset (and so its client). Field values go as
  strings, as both real bodies send them. The answer has no documented schema (`200 Success`),
  so nothing here depends on it: the next listing is the truth.
- The primary user goes as `users: [{"id": user_id}]` (Device.users is an array of Users_List in
  the spec) and is read back from `users` with `includeuser=true` (spec: "Include user details in
  the response"); inferred from the schema, not seen in a real body. A listing without `users`
  means "unknown", and the app then never rewrites the user.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from shared.halo.client import HaloClient
from shared.halo.errors import HaloProtocolError
from shared.records.halo import User
from shared.records.halo_assets import AssetRow
from shared.records.ids import reported_count, whole_number
from shared.records.parsing import Reject, describe_error

ASSET_PATH = "/api/Asset"
# A listing that would need more pages than this is a HaloPSA that ignores paging: stop.
MAX_PAGES = 10_000


@dataclass(slots=True)
class AssetListing:
    """Every asset HaloPSA listed, rejects, and how many requests the reading took."""

    assets: list[AssetRow] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    requests: int = 0


async def read_pages(
    halo: HaloClient, resource: str, key: str, params: Mapping[str, str], *, concurrency: int = 4
) -> tuple[list[Any], int]:
    """Every record of a paged `GET /api/{resource}` (deduplicated by id), and the pages read.

    Page 1 says how many records there are (`record_count`) and how many a page really holds (the
    answer's `page_size`, else the rows sent); the other pages are then read `concurrency` at a
    time. Reading goes on, one page at a time, until `record_count` records or an empty page came;
    only without a `record_count` does a short page end the listing.
    """
    asked = halo.page_size
    path = f"/api/{resource}"

    async def page(number: int) -> tuple[list[Any], int | None, int | None]:
        query = {**params, "pageinate": "true", "page_size": str(asked), "page_no": str(number)}
        body = await halo.get_json(path, query, resource=resource)
        if not isinstance(body, Mapping) or not isinstance(body.get(key), list):
            raise HaloProtocolError(
                "GET", f"{path} page {number}", 200, f"the answer has no '{key}' list"
            )
        return (
            list(body[key]),
            reported_count(body.get("record_count")),
            reported_count(body.get("page_size")),
        )

    first, count, size = await page(1)
    pages: dict[int, list[Any]] = {1: first}
    if first and count is not None and len(first) < count:
        per_page = size if size and size <= len(first) else len(first)
        planned = min(MAX_PAGES, math.ceil(count / per_page))
        slots = asyncio.Semaphore(concurrency)

        async def fetch(number: int) -> None:
            async with slots:
                pages[number] = (await page(number))[0]

        async with asyncio.TaskGroup() as group:
            for number in range(2, planned + 1):
                group.create_task(fetch(number))
    number = max(pages)
    while True:
        received = sum(len(rows) for rows in pages.values())
        last = pages[number]
        if not last or (count is not None and received >= count):
            break
        if count is None and len(last) < asked:
            break
        number += 1
        if number > MAX_PAGES:
            raise HaloProtocolError("GET", path, 200, "too many pages")
        pages[number] = (await page(number))[0]
    return _unique_rows(pages), len(pages)


def _unique_rows(pages: Mapping[int, list[Any]]) -> list[Any]:
    """The rows of `pages` in page order, each id once (HaloPSA may repeat a row across pages)."""
    rows: list[Any] = []
    seen: set[Any] = set()
    for n in sorted(pages):
        for row in pages[n]:
            row_id = row.get("id") if isinstance(row, Mapping) else None
            if isinstance(row_id, int | float | str):
                if row_id in seen:
                    continue
                seen.add(row_id)
            rows.append(row)
    return rows


async def list_assets(halo: HaloClient, asset_type_id: int) -> AssetListing:
    """Every asset, inactive ones included, with fields and users (see the module docstring)."""
    params = {"includeinactive": "true", "includeassetfields": "true", "includeuser": "true"}
    raw, pages = await read_pages(halo, "Asset", "assets", params)
    listing = AssetListing(requests=pages)
    ours_without_fields = any(
        isinstance(row, Mapping)
        and _same_id(row.get("assettype_id"), asset_type_id)
        and "fields" not in row
        for row in raw
    )
    if ours_without_fields:
        typed, more = await read_pages(
            halo, "Asset", "assets", {**params, "assettype_id": str(asset_type_id)}
        )
        listing.requests += more
        fields = {
            str(row.get("id")): row.get("fields")
            for row in typed
            if isinstance(row, Mapping) and "fields" in row
        }
        raw = [
            {**row, "fields": fields[str(row.get("id"))]}
            if isinstance(row, Mapping) and "fields" not in row and str(row.get("id")) in fields
            else row
            for row in raw
        ]
    for position, row in enumerate(raw):
        if not isinstance(row, Mapping):
            listing.rejects.append(Reject("assets", f"#{position}", "record is not a JSON object"))
            continue
        try:
            listing.assets.append(AssetRow.model_validate({**row, "has_fields": "fields" in row}))
        except ValidationError as error:
            listing.rejects.append(Reject("assets", str(row.get("id"))[:32], describe_error(error)))
    return listing


async def list_users(halo: HaloClient) -> tuple[list[User], int]:
    """Every HaloPSA user (end users of every client), inactive ones included; and the pages read."""
    raw, pages = await read_pages(halo, "Users", "users", {"includeinactive": "true"})
    users: list[User] = []
    for row in raw:
        try:
            users.append(User.model_validate(row))
        except ValidationError:
            continue  # a user the app cannot read only costs that user's site choice
    return users, pages


async def post_assets(halo: HaloClient, bodies: Sequence[Mapping[str, Any]]) -> Any:
    """One `POST /api/Asset` with `bodies` as its JSON array (creates without id, updates with)."""
    return await halo.post_json(ASSET_PATH, [dict(b) for b in bodies], resource="Asset")


def _same_id(value: Any, wanted: int) -> bool:
    return whole_number(value) == wanted
