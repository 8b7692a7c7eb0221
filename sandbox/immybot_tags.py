"""Tag state of the ImmyBot sandbox: the tags, and which tenants and computers carry them.

ImmyBot keeps a tag's carriers per entity, and its listings show them: a tenant lists its tags in
`tenantTagIds` (and `tenantTagNames`) in `GET /api/v1/tenants` (`GetTenantResponse`), a computer in
`computerTagIds` in `GET /api/v1/computers/paged` (`ComputerListViewModel`; no names there). Both
`POST /api/v1/tenants/{add,remove}-tags` and `POST /api/v1/computers/{add,remove}-tags` take the same
body, `{"entityIds": [...], "tagIds": [...]}` (`AddTagsRequest` / `RemoveTagsRequest`; all from
ImmyBot's OpenAPI document in ../shared/immybot-openapi/).

These functions read and change that state in an `ImmyDataSet`; the sandbox calls them holding its
lock, and turns a `TagRequestError` into ImmyBot's error answer. Standard library only.
"""

from __future__ import annotations

from typing import Any, Literal

from sandbox.immybot_data import ImmyDataSet

Entity = Literal["tenants", "computers"]
Record = dict[str, Any]
# Where each kind of entity lists the ids of the tags it carries.
TAG_IDS = {"tenants": "tenantTagIds", "computers": "computerTagIds"}


class TagRequestError(ValueError):
    """A request ImmyBot refuses: 400 names the offending field, 404 the unknown ids."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


def find_tags(data: ImmyDataSet, name: str) -> list[Record]:
    """Copies of the tags whose name contains `name` (case-insensitive; "" finds every tag)."""
    wanted = name.strip().casefold()
    return [dict(t) for t in data.tags if wanted in str(t.get("name", "")).casefold()]


def create_tag(data: ImmyDataSet, payload: Any) -> Record:
    """Create a tag from a `CreateTagPayload` body; a name already taken (any case) is a 400."""
    body = payload if isinstance(payload, dict) else {}
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise TagRequestError(400, "name", "The Name field is required.")
    if any(str(t["name"]).casefold() == name.casefold() for t in data.tags):
        raise TagRequestError(400, "name", f"A tag named '{name}' already exists.")
    tag = {
        "id": max((int(t["id"]) for t in data.tags), default=0) + 1,
        "name": name,
        "description": body.get("description"),
        "color": body.get("color"),
    }
    data.tags.append(tag)
    return dict(tag)


def change_tags(
    data: ImmyDataSet, entity: Entity, add: bool, payload: Any
) -> tuple[list[int], list[int]]:
    """Add (or remove) every tag of the body's `tagIds` on every entity of its `entityIds`;
    returns both lists. Nothing changes when any id is unknown (404) or the body is bad (400)."""
    if not isinstance(payload, dict):
        raise TagRequestError(400, "request", "A non-empty request body is required.")
    ids: dict[str, list[int]] = {}
    for name in ("entityIds", "tagIds"):
        value = payload.get(name)
        if not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise TagRequestError(400, name, f"{name} must be a list of integers.")
        ids[name] = value
    records = {r["id"]: r for r in getattr(data, entity) if isinstance(r, dict) and "id" in r}
    names = {t["id"]: t["name"] for t in data.tags}
    missing = [i for i in ids["entityIds"] if i not in records]
    missing_tags = [i for i in ids["tagIds"] if i not in names]
    if missing or missing_tags:
        raise TagRequestError(
            404, "entityIds", f"unknown {entity} {missing} or tags {missing_tags}"
        )
    key = TAG_IDS[entity]
    for entity_id in ids["entityIds"]:
        record = records[entity_id]
        carried = set(record.get(key) or [])
        carried = carried | set(ids["tagIds"]) if add else carried - set(ids["tagIds"])
        # A new list, never the old one changed in place: a listing being answered keeps its copy.
        record[key] = sorted(carried)
        if entity == "tenants":
            record["tenantTagNames"] = [names[i] for i in sorted(carried)]
    return list(ids["entityIds"]), list(ids["tagIds"])


def carriers(data: ImmyDataSet, entity: Entity) -> dict[str, set[int]]:
    """Tag name -> the ids of the tenants (or computers) carrying it."""
    names = {t["id"]: str(t["name"]) for t in data.tags}
    carried: dict[str, set[int]] = {name: set() for name in names.values()}
    for record in getattr(data, entity):
        for tag_id in record.get(TAG_IDS[entity]) or []:
            carried[names[tag_id]].add(int(record["id"]))
    return carried
