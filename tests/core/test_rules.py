"""Deployment rules on their own: names, keys, validation limits, uniqueness, suggestions."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.core.rules import (
    DUPLICATE_SOFTWARE,
    MAX_CONTRACT_TYPES,
    MAX_DETECT,
    MAX_RULES,
    ItemMatch,
    Rule,
    RuleSet,
    closest,
    normalise,
)


def fullwidth(text: str) -> str:
    """`text` in fullwidth forms (U+FF01-FF5E), which NFKC folds back to ASCII."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def rule(software: str = "Huntress", **extra: object) -> Rule:
    return Rule.model_validate({"software": software, "contract_types": ["Managed"], **extra})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (fullwidth("SentinelOne"), "sentinelone"),  # fullwidth folds to ASCII
        ("Straße", "strasse"),  # casefold, not lower
        ("\u00a0Managed \t\n  Security\u3000", "managed security"),  # any whitespace collapses
        ("   ", ""),
    ],
)
def test_normalise_folds_width_case_and_whitespace(text, expected):
    assert normalise(text) == expected


def test_rule_strips_software_and_keys_on_its_normalised_name():
    r = rule("  Huntress   Agent ")
    assert r.software == "Huntress   Agent"
    assert r.key == "huntress agent"
    assert r.detect_patterns == []  # no detect: installed is unknown, never the name guessed
    assert rule("S1", detect=[" Sentinel*Agent ", "S1"]).detect_patterns == ["Sentinel*Agent", "S1"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"contract_types": []}, "at least one contract type or item"),
        ({"contract_types": [], "exclude_clients": [1]}, "at least one contract type or item"),
        ({"contract_types": ["x"] * (MAX_CONTRACT_TYPES + 1)}, "at most 50 items"),
        ({"detect": ["x"] * (MAX_DETECT + 1)}, "at most 10 items"),
        ({"contract_types": ["x" * 201]}, "at most 200 characters"),
        ({"grace_days": 366}, "less than or equal to 365"),
        ({"offboard_days": 0}, "greater than or equal to 1"),
        ({"site_ids": [0]}, "greater than or equal to 1"),
        ({"exclude_clients": [2**31]}, "less than or equal to 2147483647"),
        ({"detect": ["bad\x07bell"]}, "may not contain control characters"),
    ],
)
def test_rule_limits_are_enforced(extra, message):
    with pytest.raises(ValidationError, match=message):
        rule(**extra)


@pytest.mark.parametrize("software", ["A/B", "A\\B", "C#", "Why?", fullwidth("A/B"), "x" * 101])
def test_software_names_that_cannot_be_table_keys_are_refused(software):
    with pytest.raises(ValidationError):
        rule(software)


def test_whole_number_floats_are_integers_and_optional_fields_default():
    r = rule(grace_days=5.0, offboard_days=30.0, site_ids=[11.0])
    assert (r.grace_days, r.offboard_days, r.site_ids) == (5, 30, [11])
    assert (rule().grace_days, rule().offboard_days, rule().site_ids) == (0, None, None)
    with pytest.raises(ValidationError):
        rule(grace_days=1.5)


def test_item_match_names_exactly_one_key_and_describes_it():
    assert ItemMatch(id=12).describe() == "id 12"
    assert ItemMatch(code=" S1-CORE ").describe() == "code S1-CORE"
    assert ItemMatch(name="SentinelOne").describe() == "name SentinelOne"
    for document in ({"id": 1, "code": "x"}, {"code": "x", "name": "y"}, {}):
        with pytest.raises(ValidationError, match="exactly one of id, code or name"):
            ItemMatch.model_validate(document)
    assert Rule(software="S1", items=[ItemMatch(id=1)]).contract_types == []


def test_rule_set_refuses_duplicates_by_key_with_its_own_error_type():
    with pytest.raises(ValidationError) as raised:
        RuleSet(rules=[rule("SentinelOne"), rule(fullwidth("SENTINELONE "))])
    [error] = raised.value.errors()
    assert error["type"] == DUPLICATE_SOFTWARE
    assert fullwidth("SENTINELONE") in error["msg"]
    assert len(RuleSet(rules=[rule(f"S{n}") for n in range(MAX_RULES)]).rules) == MAX_RULES
    with pytest.raises(ValidationError, match="at most 200 items"):
        RuleSet(rules=[rule(f"S{n}") for n in range(MAX_RULES + 1)])


def test_closest_suggests_known_spellings_best_first_within_the_limit():
    known = ["Managed Security", "Managed Services", "MANAGED SECURITY PLUS", "Backup"]
    assert closest("managed  securty", known) == [
        "Managed Security",
        "MANAGED SECURITY PLUS",
        "Managed Services",
    ]
    assert closest("managed securty", known, limit=1) == ["Managed Security"]
    assert closest("Firewall", known) == []
    assert closest("anything", []) == []
