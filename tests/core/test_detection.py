"""Detect patterns against ImmyBot's detected software: case, width, wildcards, first match."""

from __future__ import annotations

import pytest

from shared.core.detection import Found, find, matches
from shared.records.immybot import DetectedSoftware


def fullwidth(text: str) -> str:
    """`text` in fullwidth forms (U+FF01-FF5E), which NFKC folds back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def detected(name: str | None, version: str | None = "") -> DetectedSoftware:
    return DetectedSoftware.model_validate(
        {"computerId": 1, "tenantId": 3, "softwareName": name, "version": version}
    )


@pytest.mark.parametrize(
    ("pattern", "display_name"),
    [
        ("Huntress", "Huntress Agent"),  # the software's own name, anywhere in the display name
        ("agent", "Huntress Agent"),
        ("HUNTRESS", "huntress agent"),  # case-insensitive
        (fullwidth("HUNTRESS"), "Huntress Agent"),  # width-insensitive
        ("Huntress  Agent", "Huntress\tAgent"),  # whitespace runs compare as one space
        ("Sentinel*Agent", "SentinelOne Agent"),  # `*` any run of characters
        ("Sentinel*Agent", "Sentinel Agent"),
        ("Sentinel*Agent", "SentinelAgent"),  # including none
        ("*", "anything"),
        ("C++ (x64)", "Microsoft Visual C++ (x64) Runtime"),  # regex characters are literal
    ],
)
def test_patterns_that_match(pattern, display_name):
    assert matches(pattern, display_name)


@pytest.mark.parametrize(
    ("pattern", "display_name"),
    [
        ("Sentinel*Agent", "Agent for Sentinel"),  # order matters
        ("Huntress Agent", "Huntress"),  # the whole pattern must be there
        ("Huntress Agent", "HuntressAgent"),  # a space is not a wildcard
        ("a.c", "abc"),  # regex characters are literal
        ("C++", "CCC"),
        ("(x64)", "x64"),
        ("Sentinel?", "Sentinel1"),  # only `*` is special
    ],
)
def test_patterns_that_do_not_match(pattern, display_name):
    assert not matches(pattern, display_name)


def test_find_answers_the_first_match_by_name_with_its_version():
    rows = [
        detected("Zoom", "5.0"),
        detected("sentinel agent", "23.1"),
        detected("SentinelOne Agent", "24.2"),
        detected("Huntress Agent", "0.13"),
    ]
    assert find(["Sentinel*Agent"], rows) == Found("sentinel agent", "23.1")
    assert find(["Sentinel*Agent"], list(reversed(rows))) == Found("sentinel agent", "23.1")


def test_find_tries_every_pattern_and_orders_equal_names_by_version():
    rows = [detected("Huntress Agent", "0.14"), detected("huntress agent", "0.13")]
    assert find(["Nope", "huntress"], rows) == Found("huntress agent", "0.13")


def test_find_answers_none_when_nothing_matches():
    rows = [detected("Huntress Agent", "0.13")]
    assert find(["SentinelOne"], rows) is None
    assert find([], rows) is None
    assert find(["Huntress"], []) is None


def test_missing_name_and_version_are_empty_text():
    row = detected("Agent", None)
    assert find(["agent"], [row]) == Found("Agent", "")
    assert find(["agent"], [detected(None)]) is None
