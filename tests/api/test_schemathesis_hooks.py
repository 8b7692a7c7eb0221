"""The Schemathesis run's hooks keep a pattern's strategy, and what it draws still matches."""

from __future__ import annotations

import importlib.util
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies._internal import regex as hypothesis_regex

from shared.core.text import SOFTWARE_PATTERN
from tests.api.test_schemathesis import HOOKS


def load_hooks(monkeypatch) -> None:
    # The module patches Hypothesis when loaded; monkeypatch puts the original back afterwards.
    monkeypatch.setattr(
        hypothesis_regex, "base_regex_strategy", hypothesis_regex.base_regex_strategy
    )
    spec = importlib.util.spec_from_file_location("schemathesis_hooks_under_test", HOOKS)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_a_pattern_is_built_once_per_alphabet(monkeypatch):
    original = hypothesis_regex.base_regex_strategy
    load_hooks(monkeypatch)
    assert hypothesis_regex.base_regex_strategy is not original
    pattern = re.compile(SOFTWARE_PATTERN)

    def built(alphabet):
        return hypothesis_regex.base_regex_strategy(pattern, alphabet=alphabet)

    utf8 = built(st.characters(codec="utf-8"))
    assert built(st.characters(codec="utf-8")) is utf8  # a new, equal alphabet
    assert built(st.characters(codec="ascii")) is not utf8


def test_what_a_kept_strategy_draws_matches_its_pattern(monkeypatch):
    load_hooks(monkeypatch)
    pattern = re.compile(SOFTWARE_PATTERN)
    kept = hypothesis_regex.base_regex_strategy(pattern, alphabet=st.characters(codec="utf-8"))

    # The first draws load Hypothesis's Unicode tables: slow on a busy machine, and not the point.
    @settings(
        max_examples=50,
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(kept)
    def draws(value: str) -> None:
        assert pattern.search(value), value

    draws()
