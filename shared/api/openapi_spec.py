"""The typed route table the OpenAPI document is generated from: parameters, answers, operations
and paths, each rendered into its OpenAPI 3.1 form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter

from shared.api.problems import PROBLEM_JSON, Problem

REF = "#/components/schemas/{model}"
Method = Literal["get", "put", "patch", "post", "delete"]
Where = Literal["query", "path", "header"]
# What a body holds: a model, a component named by hand (a request body variant), or a schema.
Schema = type[BaseModel] | str | Mapping[str, Any]
OBJECT: Mapping[str, Any] = {"type": "object"}
TEXT: Mapping[str, Any] = {"type": "string"}

PROBLEM_REASONS = {
    400: "Missing, conflicting or malformed parameters or body, or a query parameter the "
    "operation does not take (or one given twice)",
    404: "Unknown software, contract type, item, rule, tag, mapping or ticket",
    409: "Conflicts: the body names another resource than the URL, a software twice, a "
    "HaloPSA client or site or an ImmyBot tenant the current data says is not there "
    "(`unknown-ids`, with `unknown`), or nothing is held to approve",
    413: "Body too large, or more rules than storage holds",
    415: "The body's Content-Type is not one the operation takes (see Accept-Patch)",
    422: "A valid patch whose result is not a valid rule (it names no contract type nor item)",
    503: "No snapshot yet, storage unavailable, or the app is not configured (Retry-After)",
}
UNAUTHORIZED = "No valid function key (the host answers, with no body)"
KEYS: list[dict[str, list[str]]] = [{"functionKey": []}, {"functionKeyQuery": []}]
# The same header or query parameter, holding the master key.
ADMIN_KEYS = KEYS
# HaloPSA's webhook: no function key, its own secret as a Bearer token or Basic password.
WEBHOOK_KEYS: list[dict[str, list[str]]] = [{"webhookBearer": []}, {"webhookBasic": []}]


def schema_of(kind: Schema) -> dict[str, Any]:
    """A model or named component as a reference; a schema as itself."""
    if isinstance(kind, str):
        return {"$ref": REF.format(model=kind)}
    if isinstance(kind, type):
        return {"$ref": REF.format(model=kind.__name__)}
    return dict(kind)


def type_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of a (constrained) Python type, as pydantic validates it."""
    return TypeAdapter(kind).json_schema()


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter: where it goes, the type its value must have, and what it means."""

    name: str
    where: Where
    kind: Any
    description: str | None = None
    required: bool = False

    def render(self) -> dict[str, Any]:
        """The parameter object."""
        spec: dict[str, Any] = {"name": self.name, "in": self.where, "required": self.required}
        if self.description is not None:
            spec["description"] = self.description
        return spec | {"schema": type_schema(self.kind)}


@dataclass(frozen=True, slots=True)
class Selector:
    """Exactly one of several query parameters (form, exploded): an object of optional members."""

    name: str
    description: str
    members: Mapping[str, tuple[Any, str]]

    def render(self) -> dict[str, Any]:
        """The parameter object, its schema an object allowing one member of `members`."""
        properties = {
            name: type_schema(kind) | {"description": description}
            for name, (kind, description) in self.members.items()
        }
        schema = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
            "oneOf": [{"required": [name]} for name in self.members],
        }
        return {
            "name": self.name,
            "in": "query",
            "required": True,
            "style": "form",
            "explode": True,
            "description": self.description,
            "schema": schema,
        }


@dataclass(frozen=True, slots=True)
class Response:
    """One answer of an operation: what it means, its bodies by media type, its headers."""

    description: str
    content: Mapping[str, Schema] = field(default_factory=dict)
    headers: tuple[str, ...] = ()

    @classmethod
    def json(cls, model: Schema, description: str, *headers: str) -> Response:
        """A JSON answer of `model`."""
        return cls(description, {"application/json": model}, headers)

    @classmethod
    def problem(cls, description: str) -> Response:
        """An RFC 9457 problem answer."""
        return cls(description, {PROBLEM_JSON: Problem})

    def render(self) -> dict[str, Any]:
        """The response object."""
        spec: dict[str, Any] = {"description": self.description}
        if self.content:
            spec["content"] = {m: {"schema": schema_of(s)} for m, s in self.content.items()}
        if self.headers:
            spec["headers"] = {h: {"schema": dict(TEXT), "required": True} for h in self.headers}
        return spec


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on a path: its answers, and the problem statuses it may answer with."""

    method: Method
    operation_id: str
    answers: Mapping[int, Response]
    problems: tuple[int, ...] = ()
    summary: str | None = None
    description: str | None = None
    params: tuple[Param | Selector, ...] = ()
    body: Schema | None = None
    body_types: tuple[str, ...] = ("application/json",)
    admin: bool = False
    security: list[dict[str, list[str]]] | None = None  # other than the document's keys

    def render(self) -> dict[str, Any]:
        """The operation object; every operation may answer 401 (the host) and 400."""
        spec: dict[str, Any] = {"operationId": self.operation_id}
        if self.summary is not None:
            spec["summary"] = self.summary
        if self.description is not None:
            spec["description"] = self.description
        if self.admin or self.security is not None:
            spec["security"] = self.security if self.security is not None else ADMIN_KEYS
        if self.params:
            spec["parameters"] = [p.render() for p in self.params]
        if self.body is not None:
            content = {media: {"schema": schema_of(self.body)} for media in self.body_types}
            spec["requestBody"] = {"required": True, "content": content}
        answers = {str(s): a.render() for s, a in self.answers.items()}
        answers.setdefault("401", {"description": UNAUTHORIZED})
        # Every route refuses a query parameter it does not take (shared.api.query): 400.
        implied = () if 400 in self.answers or 400 in self.problems else (400,)
        for status in (*implied, *self.problems):
            answers[str(status)] = Response.problem(PROBLEM_REASONS[status]).render()
        return spec | {"responses": answers}


@dataclass(frozen=True, slots=True)
class Route:
    """A path, the parameters all its operations share, and its operations."""

    path: str
    operations: tuple[Operation, ...]
    params: tuple[Param, ...] = ()

    def query_names(self, method: str) -> frozenset[str]:
        """The query parameters `method` takes here; for a method the path does not take, every
        name its operations take."""
        ops = [o for o in self.operations if o.method == method.lower()] or list(self.operations)
        return frozenset(
            name
            for o in ops
            for p in o.params
            for name in (p.members if isinstance(p, Selector) else [p.name])
            if isinstance(p, Selector) or p.where == "query"
        )

    def render(self) -> dict[str, Any]:
        """The path item object."""
        spec: dict[str, Any] = (
            {"parameters": [p.render() for p in self.params]} if self.params else {}
        )
        return spec | {o.method: o.render() for o in self.operations}
