"""Validating raw vendor JSON into pydantic models without raising: valid records plus rejects,
each with a reason that names fields but never echoes their values."""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from shared.records.ids import whole_number

M = TypeVar("M", bound=BaseModel)


class Cause:
    """Why a record was rejected: a short fixed vocabulary, counted per record type."""

    INVALID = "invalid"  # with the first bad field: "invalid client_id"
    NOT_AN_OBJECT = "not an object"
    CLIENT_REJECTED = "client rejected"  # its client was itself rejected
    CLIENT_UNKNOWN = "client unknown"  # its client is not among the clients HaloPSA listed
    TOO_LARGE = "too large"  # too large to store in one Table Storage entity


@dataclass(frozen=True, slots=True)
class Reject:
    """A record HaloPSA sent that the app cannot use, and why (no field values: they may be PII)."""

    kind: str
    record_id: str
    reason: str
    cause: str = Cause.INVALID


@dataclass(slots=True)
class Parsed(Generic[M]):
    """Valid records plus rejects with reasons; a bad record never costs the good ones."""

    records: list[M] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def describe_error(error: ValidationError) -> str:
    """A one-line reason from a validation error, naming fields but never echoing their values."""
    parts = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(p) for p in item.get("loc", ())) or "record"
        parts.append(f"{loc}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)


def _cause(error: ValidationError) -> str:
    first = error.errors(include_input=False, include_url=False, include_context=False)[:1]
    location = first[0].get("loc", ()) if first else ()
    return f"{Cause.INVALID} {location[0]}" if location else Cause.INVALID


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run a burst of CPU-bound allocation without the cyclic garbage collector, then restore it.

    Why: validating, resolving and laying out a 5,000-client read allocates millions of acyclic
    objects (dicts, models, JSON texts), and every allocation threshold starts a collection that
    traverses the live ones, the whole snapshot included: 15-25% of a sync's CPU, measured. Keep
    the block free of awaits (others on the event loop would run without the collector too)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def vendor_json(content: bytes) -> Any:
    """A vendor's JSON answer decoded (ValueError if it is not JSON), with the collector paused.

    pydantic-core's parser, not json.loads: the same values in about half the time (a
    5,000-client HaloPSA read decodes 38 MB). Paused: one answer is thousands of new objects, and
    collections started inside it traverse every answer still held (0.2 s of that read)."""
    with gc_paused():
        return from_json(content)


def parse_records(model: type[M], raw: Iterable[Any], kind: str | None = None) -> Parsed[M]:
    """Validate raw HaloPSA JSON objects into `model`, collecting rejects instead of raising.

    Child lists the model names (an invoice's `lines`) are validated child by child: a bad line
    is rejected on its own and its invoice kept with the good lines.
    """
    with gc_paused():
        return _parse_records(model, raw, kind)


def _parse_records(model: type[M], raw: Iterable[Any], kind: str | None) -> Parsed[M]:
    kind = getattr(model, "record_type", "") or kind or model.__name__
    children: Mapping[str, tuple[type[BaseModel], str]] = getattr(model, "children", {})
    result: Parsed[M] = Parsed()
    # A record's id is worked out only for a reject: nearly every record is valid.
    for position, item in enumerate(raw):
        if not isinstance(item, Mapping):
            result.rejects.append(
                Reject(
                    kind,
                    _raw_id(item, position),
                    "record is not a JSON object",
                    Cause.NOT_AN_OBJECT,
                )
            )
            continue
        if children:
            item = _with_valid_children(item, position, children, result.rejects)
        try:
            result.records.append(model.model_validate(item))
        except ValidationError as error:
            record_id = _raw_id(item, position)
            result.rejects.append(Reject(kind, record_id, describe_error(error), _cause(error)))
    return result


def _with_valid_children(
    item: Mapping[str, Any],
    position: int,
    children: Mapping[str, tuple[type[BaseModel], str]],
    rejects: list[Reject],
) -> Mapping[str, Any]:
    replaced = dict(item)
    for key, (child_model, child_kind) in children.items():
        raw_children = item.get(key)
        if not isinstance(raw_children, list):
            continue  # absent or not a list: the parent's own validation says so
        kept: list[Any] = []
        for number, child in enumerate(raw_children):
            if not isinstance(child, Mapping):
                child_id = _child_id(child, number, item, position)
                rejects.append(
                    Reject(child_kind, child_id, "record is not a JSON object", Cause.NOT_AN_OBJECT)
                )
                continue
            try:
                kept.append(child_model.model_validate(child))
            except ValidationError as error:
                child_id = _child_id(child, number, item, position)
                rejects.append(Reject(child_kind, child_id, describe_error(error), _cause(error)))
        replaced[key] = kept
    return replaced


def _child_id(child: Any, number: int, parent: Any, position: int) -> str:
    return f"{_raw_id(child, number)} of {_raw_id(parent, position)}"


def _raw_id(item: Any, position: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("id"), int | float | str):
        value = item["id"]
        number = whole_number(value)
        return str(value if number is None else number)[:32]
    return f"#{position}"
