"""Stateful assets for the HaloPSA sandbox: `GET /api/Asset` listings and `POST /api/Asset` writes.

Speaks what `shared.halo.assets` documents (and where each fact comes from):
- `GET /api/Asset`: `includeinactive`, `client_id`, `site_id`, `assettype_id`, `count`, and
  `pageinate`/`page_size`/`page_no` with `record_count`; `fields` (`[{id, name, value}]`) only with
  `includeassetfields=true`, `users` (`[{id, name}]`) only with `includeuser=true`. Two real
  behaviours can be switched on: `max_page_size` (a live tenant answered page_size 50 when asked
  for 200) and `fields_need_type` (fields only when the listing names an `assettype_id`).
- `POST /api/Asset` with a JSON array: elements without `id` create (new ids; `site_id` places the
  asset and its client), elements with `id` update only the keys they carry; `fields` merge by id
  and field ids the tenant does not know are ignored, as HaloPSA does. The key field's value
  (field `key_field_id`, 101 = "Name/Keyfield" on the tenant of the real create body) is served as
  `key_field`. The answer is the saved records (HaloPSA documents no answer schema).
- Faults mid-write: `fail_writes_after(n, status)` lets the next `n` asset writes through, then
  fails the request that holds the next one with `status`, keeping what that request already
  wrote, as a server dying half-way through an array would.

Asset type ids: records that only name their type (`assettype_name`) get a stable id from
`TYPE_IDS`. Standard library only.
"""

from __future__ import annotations

import copy
import json
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sandbox.halo_data import HaloDataSet
from sandbox.http_server import Response, error_response

KEY_FIELD_ID = 101
DEFAULT_PAGE_SIZE = 50
TYPE_IDS: dict[str, int] = {"Workstation": 1, "Laptop": 2, "Server": 3, "Firewall": 4, "Printer": 5}
# Field ids the simulated tenant knows (others are ignored on write): the key field, and a range
# tests and demos use for serial numbers, ImmyBot ids and markers.
KNOWN_FIELDS: frozenset[int] = frozenset({KEY_FIELD_ID, *range(110, 200)})

Injected = Callable[[int, int], Response | None]


@dataclass
class WriteFault:
    """Let `after` more asset writes through, then fail with `status` (`times` requests; None:
    forever)."""

    after: int
    status: int = 500
    times: int | None = 1


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _flag(query: Mapping[str, str], name: str) -> bool:
    return query.get(name, "").strip().lower() in ("true", "1")


class AssetBook:
    """Every asset of a sandbox data set, mutable through `POST /api/Asset`. Thread-safe."""

    def __init__(
        self,
        data: HaloDataSet,
        *,
        key_field_id: int = KEY_FIELD_ID,
        known_fields: Iterable[int] = KNOWN_FIELDS,
    ) -> None:
        self._lock = threading.Lock()
        self.key_field_id = key_field_id
        self.known_fields = frozenset(known_fields) | {key_field_id}
        self.max_page_size: int | None = None
        self.fields_need_type = False
        self._fault: WriteFault | None = None
        self._sites: dict[int, Mapping[str, Any]] = {}
        for site in data.sites:
            number = _int(site.get("id")) if isinstance(site, Mapping) else None
            if number is not None:
                self._sites[number] = site
        self._users: dict[int, str] = {}
        for user in data.users:
            number = _int(user.get("id")) if isinstance(user, Mapping) else None
            if number is not None:
                self._users[number] = str(user.get("name") or "")
        self._assets: dict[int, dict[str, Any]] = {}
        self._odd: list[Any] = []  # malformed records are served as they are, never written
        good: dict[int, dict[str, Any]] = {}
        for record in data.assets:
            number = _int(record.get("id")) if isinstance(record, Mapping) else None
            if number is None or not isinstance(record, dict):
                self._odd.append(record)
                continue
            good[number] = record
        for number in sorted(good):  # insertion order is id order from here on
            self._assets[number] = self._loaded(good[number])
        self._next_id = max(self._assets, default=0) + 1
        self.posts = 0
        self.created = 0
        self.updated = 0

    def _loaded(self, record: dict[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(record)
        if _int(stored.get("assettype_id")) is None:
            stored["assettype_id"] = TYPE_IDS.get(str(stored.get("assettype_name") or ""), 0)
        fields = {
            _int(f.get("id")): f
            for f in stored.get("fields") or []
            if isinstance(f, Mapping) and _int(f.get("id")) is not None
        }
        key = str(stored.get("key_field") or "")
        if key and self.key_field_id not in fields:
            fields[self.key_field_id] = {"id": self.key_field_id, "name": "Name", "value": key}
        stored["fields"] = [dict(f) for _, f in sorted(fields.items())]
        stored.setdefault("users", [])
        return stored

    # -- inspection and faults ---------------------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """Every well-formed asset as stored (with fields and users), in id order: a deep copy."""
        with self._lock:
            return [copy.deepcopy(self._assets[k]) for k in sorted(self._assets)]

    def fail_writes_after(self, count: int, status: int = 500, times: int | None = 1) -> None:
        """Fail the request holding the asset write after the next `count` (see WriteFault)."""
        with self._lock:
            self._fault = WriteFault(count, status, times)

    def clear_faults(self) -> None:
        """Stop failing writes."""
        with self._lock:
            self._fault = None

    # -- requests ----------------------------------------------------------------------------------

    def answer(
        self, method: str, query: Mapping[str, str], body: bytes, injected: Injected
    ) -> Response:
        """Answer `GET` or `POST /api/Asset`; `injected(page, last_page)` may fail a listing."""
        if method == "POST":
            return self._post(body)
        return self._list(query, injected)

    def _list(self, query: Mapping[str, str], injected: Injected) -> Response:
        try:
            wanted = {
                name: _param(query, name)
                for name in ("client_id", "site_id", "assettype_id", "count", "page_no")
            }
            size = _param(query, "page_size") or DEFAULT_PAGE_SIZE
        except ValueError as error:
            return error_response(400, "invalid_request", str(error))
        include_inactive = _flag(query, "includeinactive")
        with_fields = _flag(query, "includeassetfields") and (
            not self.fields_need_type or wanted["assettype_id"] is not None
        )
        with_users = _flag(query, "includeuser")
        paginate = _flag(query, "pageinate")
        if self.max_page_size is not None:
            size = min(size, self.max_page_size)
        page = wanted["page_no"] or 1
        with self._lock:
            filters = [(k, wanted[k]) for k in ("client_id", "site_id", "assettype_id")]
            filters = [(k, v) for k, v in filters if v is not None]
            # Ids only grow, so insertion order is id order: no sort per request.
            rows: list[Any] = [
                record
                for record in self._assets.values()
                if (include_inactive or not record.get("inactive"))
                and all(_matches(record, k, v) for k, v in filters)
            ]
            rows.extend(self._odd if wanted["client_id"] is None else [])
            total = len(rows)
            if paginate:
                rows = rows[(page - 1) * size : page * size]
            elif wanted["count"] is not None:
                rows = rows[: wanted["count"]]
            # Copies of the page only: a listing must never hand out the stored records.
            served = [_served(r, with_fields, with_users) for r in rows]
        last_page = max(1, math.ceil(total / size)) if paginate else 1
        failed = injected(page if paginate else 1, last_page)
        if failed is not None:
            return failed
        if paginate:
            return Response(
                200,
                {"page_no": page, "page_size": size, "record_count": total, "assets": served},
            )
        return Response(200, {"record_count": total, "assets": served})

    def _post(self, body: bytes) -> Response:
        try:
            items = json.loads(body or b"null")
        except ValueError:
            return error_response(400, "invalid_request", "the body is not JSON")
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            return error_response(400, "invalid_request", "the body must be a JSON array of assets")
        with self._lock:
            self.posts += 1
            for item in items:
                problem = self._check(item)
                if problem is not None:
                    return error_response(400, "invalid_request", problem)
            saved = []
            for item in items:
                fault = self._fault
                if fault is not None:
                    if fault.after <= 0:
                        if fault.times is not None:
                            fault.times -= 1
                            if fault.times <= 0:
                                self._fault = None
                        return error_response(fault.status, "sandbox_fault", "failed mid-write")
                    fault.after -= 1
                saved.append(copy.deepcopy(self._write(item)))
        return Response(200, saved)

    def _check(self, item: Mapping[str, Any]) -> str | None:
        number = _int(item.get("id"))
        if "id" in item and (number is None or number not in self._assets):
            return f"no asset {str(item.get('id'))[:20]} to update"
        if number is None:
            if _int(item.get("assettype_id")) is None:
                return "a new asset needs an assettype_id"
            if _int(item.get("site_id")) not in self._sites:
                return "a new asset needs a known site_id"
        fields = item.get("fields", [])
        if not isinstance(fields, list) or not all(isinstance(f, Mapping) for f in fields):
            return "fields must be an array of {id, value}"
        users = item.get("users", [])
        if not isinstance(users, list) or not all(isinstance(u, Mapping) for u in users):
            return "users must be an array of {id}"
        return None

    def _write(self, item: Mapping[str, Any]) -> dict[str, Any]:
        number = _int(item.get("id"))
        if number is None:
            number, self._next_id = self._next_id, self._next_id + 1
            record: dict[str, Any] = {
                "id": number,
                "inventory_number": "",
                "key_field": "",
                "inactive": False,
                "fields": [],
                "users": [],
            }
            self._assets[number] = record
            self.created += 1
        else:
            record = self._assets[number]
            self.updated += 1
        for key, value in item.items():
            if key in ("id", "fields", "users", "key_field"):
                continue
            record[key] = value
        if "site_id" in item:
            site = self._sites[_int(item["site_id"]) or 0]
            record["site_id"] = _int(item["site_id"])
            record["site_name"] = site.get("name", "")
            record["client_id"] = _int(site.get("client_id"))
            record["client_name"] = site.get("client_name", "")
        if "assettype_id" in item:
            record["assettype_id"] = _int(item["assettype_id"])
        fields = {_int(f.get("id")): dict(f) for f in record["fields"]}
        for given in item.get("fields", []):
            field_id = _int(given.get("id"))
            if field_id is None or field_id not in self.known_fields:
                continue  # HaloPSA ignores fields it does not know
            value = given.get("value")
            fields[field_id] = {"id": field_id, "value": "" if value is None else str(value)}
        record["fields"] = [fields[k] for k in sorted(k for k in fields if k is not None)]
        key = fields.get(self.key_field_id)
        record["key_field"] = key["value"] if key else record.get("key_field", "")
        if "users" in item:
            record["users"] = [
                {"id": uid, "name": self._users.get(uid, "")}
                for uid in (_int(u.get("id")) for u in item["users"])
                if uid is not None
            ]
        return record


def _served(record: Any, with_fields: bool, with_users: bool) -> Any:
    if not isinstance(record, dict):
        return copy.deepcopy(record)
    # Stored records are flat apart from `fields` and `users` (lists of flat dicts): copy just
    # those, which is many times faster than a deepcopy on a page of a large listing.
    row = dict(record)
    row.pop("fields", None)
    row.pop("users", None)
    if with_fields:
        row["fields"] = [dict(f) for f in record.get("fields", ())]
    if with_users:
        row["users"] = [dict(u) for u in record.get("users", ())]
    return row


def _param(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ValueError(f"{name} must be an integer") from None
    if name in ("page_size", "page_no") and value < 1:
        raise ValueError(f"{name} must be at least 1")
    return value


def _matches(record: Mapping[str, Any], key: str, wanted: int | None) -> bool:
    return wanted is None or _int(record.get(key)) == wanted
