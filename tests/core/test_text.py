"""The input rules the API checks and its OpenAPI document states: one definition, both uses."""

from __future__ import annotations

import pytest

from shared.api.problems import ApiError, json_object
from shared.core.text import (
    KEY_UNSAFE_COMPAT,
    LOOKUP_PATTERN,
    SOFTWARE_PATTERN,
    key_unsafe_class,
    matches,
    parse_id,
)


def test_the_written_out_key_unsafe_class_is_the_computed_one():
    # Unicode data changes with Python versions: recompute rather than trust the constant.
    assert key_unsafe_class() == KEY_UNSAFE_COMPAT


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", 1),
        ("007", 7),
        ("2147483647", 2147483647),
        ("2147483648", None),
        ("0", None),
        ("-94", None),
        ("²", None),  # "²".isdigit() is true
        ("٣", None),
        ("\uff11", None),
        ("1\n", None),
        ("", None),
        ("1.0", None),
    ],
)
def test_ids_are_ascii_digits_in_32_bits(raw, expected):
    assert parse_id(raw) == expected


@pytest.mark.parametrize(
    ("value", "lookup", "software"),
    [
        ("Huntress", True, True),
        ("  Managed  Security ", True, True),
        ("\u202eexe.txt", True, True),  # bidi controls are text; the tab isolates them
        ("", False, False),
        (" \u3000", False, False),
        ("a\x00b", False, False),
        ("a\x9fb", False, False),
        ("S1/CORE", True, False),
        ("a\uff0fb", True, False),
        ("#1", True, False),
    ],
)
def test_patterns(value, lookup, software):
    assert matches(LOOKUP_PATTERN, value) is lookup
    assert matches(SOFTWARE_PATTERN, value) is software


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_json_nested_past_the_recursion_limit_is_a_400(body):
    with pytest.raises(ApiError) as raised:
        json_object(body, 10**6)
    assert raised.value.problem.status == 400
