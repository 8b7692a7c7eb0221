"""The OpenAPI document states the bounds the code holds inputs to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import azure.functions as func

from shared.api.openapi import openapi_document
from shared.core.text import INT32_MAX
from tests.registry import handler

REF = "#/components/schemas/"


def _resolve(schema: Any, seen: frozenset[str] = frozenset()) -> Iterator[tuple[str, dict]]:
    """Every (member name, schema) under `schema`, references followed once."""
    if isinstance(schema, list):
        for item in schema:
            yield from _resolve(item, seen)
        return
    if not isinstance(schema, dict):
        return
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF) and ref not in seen:
        target = openapi_document()["components"]["schemas"][ref[len(REF) :]]
        yield from _resolve(target, seen | {ref})
    for name, member in (schema.get("properties") or {}).items():
        yield name, member
        yield from _resolve(member, seen)
    for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
        yield from _resolve(schema.get(key), seen)


def inputs() -> Iterator[tuple[str, str, dict]]:
    """(where, name, schema) of every parameter and request body member a caller sends."""
    for path, item in openapi_document()["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for param in [*item.get("parameters", []), *operation.get("parameters", [])]:
                yield f"{method} {path}", param["name"], param["schema"]
                for name, member in _resolve(param["schema"]):
                    yield f"{method} {path} {param['name']}", name, member
            for media in (operation.get("requestBody") or {}).get("content", {}).values():
                for name, member in _resolve(media["schema"]):
                    yield f"{method} {path} body", name, member


def integers(schema: dict) -> Iterator[dict]:
    """The integer schemas `schema` is or holds directly (its items, its alternatives)."""
    if schema.get("type") == "integer":
        yield schema
    for key in ("anyOf", "oneOf", "allOf"):
        for alternative in schema.get(key) or []:
            yield from integers(alternative)
    if isinstance(schema.get("items"), dict):
        yield from integers(schema["items"])


def is_id(name: str) -> bool:
    return name == "id" or name.endswith(("_id", "_ids")) or name == "exclude_clients"


def test_every_id_a_caller_sends_is_stated_as_a_positive_32_bit_integer():
    unbounded = []
    for where, name, schema in inputs():
        for number in integers(schema):
            bounds = (number.get("minimum"), number.get("maximum"))
            if is_id(name) and bounds != (1, INT32_MAX):
                unbounded.append(f"{where}: {name} {bounds}")
            elif None in bounds:
                unbounded.append(f"{where}: {name} has no bound {bounds}")
    assert not unbounded, unbounded


def test_the_client_id_bound_the_document_states_is_the_one_the_code_holds():
    def plan(client_id: str) -> int:
        request = func.HttpRequest(
            "GET", "/api/assets/plan", body=b"", params={"client_id": client_id}
        )
        return handler("assets_plan")(request).status_code

    (param,) = openapi_document()["paths"]["/assets/plan"]["get"]["parameters"]
    assert param["schema"]["maximum"] == INT32_MAX
    assert plan(str(INT32_MAX + 1)) == 400
    assert plan("6505687945944") == 400
