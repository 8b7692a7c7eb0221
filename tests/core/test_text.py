"""The input rules the API checks and its OpenAPI document states: one definition, both uses."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from shared.api.problems import ApiError, json_object
from shared.core.text import (
    KEY_UNSAFE_COMPAT,
    LOOKUP_PATTERN,
    REFUSED_CATEGORIES,
    SOFTWARE_PATTERN,
    key_unsafe_class,
    matches,
    parse_id,
    refused_character,
    visible_pattern,
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


@pytest.mark.parametrize(
    ("text", "code_point"),
    [
        ("Sentinel\u202eOne", "U+202E"),  # right-to-left override (Cf)
        ("Sentinel\u200bOne", "U+200B"),  # zero width space (Cf)
        ("Tool\u00ad", "U+00AD"),  # soft hyphen (Cf)
        ("\U0001f469\u200d\U0001f4bb", "U+200D"),  # an emoji ZWJ sequence: its joiner
        ("\U0001f3f4\U000e0067\U000e0062\U000e007f", "U+E0067"),  # a subdivision flag's tags
        ("a\x07b", "U+0007"),  # control (Cc)
        ("a\ud800b", "U+D800"),  # lone surrogate (Cs)
        ("a\ue000b", "U+E000"),  # private use (Co)
        ("a\U000f0000b", "U+F0000"),  # supplementary private use (Co)
        ("a\u0378b", "U+0378"),  # unassigned (Cn)
        ("a\U0003fffeb", "U+3FFFE"),  # a noncharacter (Cn)
    ],
)
def test_a_name_may_not_hold_invisible_or_unassigned_characters(text, code_point):
    refused = refused_character(text)
    assert refused is not None and refused.startswith(f"{code_point} (")


@pytest.mark.parametrize(
    "text",
    [
        "SentinelOne",
        "  Managed  Security ",
        "\U0001f6e1\ufe0f Shield",  # an emoji with its variation selector (Mn)
        "\U0001f44d\U0001f3fd",  # with a skin tone (Sk)
        "\U0001f1ec\U0001f1e7",  # a flag of regional indicators (So)
        "Ελληνικά 日本語 עברית",
        "\u3000ideographic space",
    ],
)
def test_assigned_visible_characters_and_emoji_pass(text):
    assert refused_character(text) is None


def test_the_documents_class_is_the_check():
    # The pattern the document states and the check the code makes agree on every BMP code
    # point and on a spread of astral ones (inside a name: at its end Python's `$` lets one
    # newline through, the known edge, and the field strips it).
    pattern = re.compile(visible_pattern())
    codes = [*range(0x10000), *range(0x10000, sys.maxunicode + 1, 97), 0xE0001, 0x10FFFF]
    wrong = [
        hex(c)
        for c in codes
        if (pattern.search(f"x{chr(c)}x") is None)
        != (unicodedata.category(chr(c)) in REFUSED_CATEGORIES)
    ]
    assert not wrong, wrong[:10]
