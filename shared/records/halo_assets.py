"""HaloPSA asset rows as `GET /api/Asset` answers them (lenient: what matching needs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from shared.records.halo import OptionalId, RecordId, Text
from shared.records.ids import whole_number


def _field_values(value: Any) -> Any:
    # FieldHelper rows: {"id": 117, "name": "Serial Number", "value": "..", "display": ".."}.
    if value is None:
        return {}
    if not isinstance(value, list):
        return value
    out: dict[int, str] = {}
    for entry in value:
        if not isinstance(entry, Mapping):
            continue
        field_id = whole_number(entry.get("id"))
        if field_id is None:
            continue
        raw = entry.get("value")
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            raw = entry.get("display")
        out[field_id] = "" if raw is None else str(raw).strip()
    return out


def _user_ids(value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, list):
        return value
    ids: list[int] = []
    for entry in value:
        number = whole_number(entry.get("id") if isinstance(entry, Mapping) else entry)
        if number is not None and number > 0:
            ids.append(number)
    return tuple(ids)


class AssetRow(BaseModel):
    """One `GET /api/Asset` row: what matching and refreshing need, nothing else.

    `fields` maps field id -> value (text); `user_ids` is None when the row says nothing of users.
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    id: RecordId
    client_id: OptionalId = None
    site_id: OptionalId = None
    assettype_id: OptionalId = None
    key_field: Text = ""
    inactive: bool = False
    fields: Annotated[dict[int, str], BeforeValidator(_field_values)] = Field(default_factory=dict)
    has_fields: bool = Field(
        default=True, description="False when the listing sent no `fields` for this row."
    )
    user_ids: Annotated[tuple[int, ...] | None, BeforeValidator(_user_ids)] = Field(
        default=None, validation_alias="users"
    )
