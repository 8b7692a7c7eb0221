"""The Schemathesis run's hooks build a character class as Hypothesis does, only faster, keep a
pattern's strategy, and what it draws still matches."""

from __future__ import annotations

import importlib.util
import re
import sys
from re import _parser as sre_parse  # what Hypothesis parses a pattern with
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.internal import charmap
from hypothesis.internal.intervalsets import IntervalSet
from hypothesis.strategies._internal import regex as hypothesis_regex
from hypothesis.strategies._internal.strategies import SearchStrategy

from shared.core.text import SOFTWARE_PATTERN, visible_pattern
from tests.api.test_schemathesis import HOOKS


def load_hooks(monkeypatch) -> ModuleType:
    # The module patches Hypothesis when loaded; monkeypatch puts the original back afterwards.
    for name in ("base_regex_strategy", "_strategy"):
        monkeypatch.setattr(hypothesis_regex, name, getattr(hypothesis_regex, name))
    monkeypatch.setattr(charmap, "intervals_from_codec", charmap.intervals_from_codec)
    spec = importlib.util.spec_from_file_location("schemathesis_hooks_under_test", HOOKS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def _first_class(elements: Any) -> Any:
    """The first character class (an IN element) of a parsed pattern, repeats looked into."""
    for code, value in elements:
        if code == hypothesis_regex.sre.IN:
            return (code, value)
        if code in (hypothesis_regex.sre.MAX_REPEAT, hypothesis_regex.sre.MIN_REPEAT):
            return _first_class(value[2])
    raise AssertionError("no character class")


def _class_strategy(build, pattern: str, flags: re.RegexFlag) -> SearchStrategy:
    element = _first_class(sre_parse.parse(pattern, flags))
    context = hypothesis_regex.Context(flags=flags)
    return build(element, context, True, alphabet=st.characters(codec="utf-8"))


@pytest.mark.parametrize(
    ("pattern", "flags"),
    [
        (visible_pattern(), re.RegexFlag(0)),  # 144,000 code points in about 700 ranges
        (SOFTWARE_PATTERN, re.RegexFlag(0)),  # negated, the \\uXXXX spelling
        (r"[a-f\d_@\u00e9-\u00ff]", re.RegexFlag(0)),  # a category among literals and ranges
        (r"[\W0-3]", re.ASCII),
        (r"[a-cK]", re.IGNORECASE),  # members add their other case: Hypothesis's own way
    ],
)
def test_a_character_class_holds_the_code_points_hypothesis_gives_it(monkeypatch, pattern, flags):
    original = hypothesis_regex._strategy
    load_hooks(monkeypatch)
    assert hypothesis_regex._strategy is not original
    fast = _class_strategy(hypothesis_regex._strategy, pattern, flags)
    slow = _class_strategy(original, pattern, flags)
    assert type(fast) is type(slow)
    assert fast.intervals == slow.intervals


def test_a_class_without_ignorecase_never_reaches_hypothesiss_own_build(monkeypatch):
    hooks = load_hooks(monkeypatch)
    own = hooks._element

    def only_other_elements(codes, context, is_unicode, *, alphabet):
        assert not (isinstance(codes, tuple) and codes[0] == hypothesis_regex.sre.IN), codes[:1]
        return own(codes, context, is_unicode, alphabet=alphabet)

    monkeypatch.setattr(hooks, "_element", only_other_elements)
    pattern = re.compile(visible_pattern())
    built = hypothesis_regex.base_regex_strategy(pattern, alphabet=st.characters(codec="utf-8"))
    assert built is not None


def _one_at_a_time(codec: str, stop: int) -> tuple[tuple[tuple[int, int], ...], ...]:
    """Hypothesis's definition, code point by code point: those `codec` encodes, and those of them
    that do not decode back to themselves, as merged intervals."""
    encodable, lossy = [], []
    for point in range(stop):
        try:
            encoded = chr(point).encode(codec)
        except UnicodeError:
            continue
        encodable.append(point)
        if encoded.decode(codec) != chr(point):
            lossy.append(point)
    return tuple(
        IntervalSet.from_string("".join(map(chr, points))).intervals
        for points in (encodable, lossy)
    )


# Below U+11000: the surrogates (UTF-8 encodes none), and blocks with and without gaps. Blocks
# of one code point take the whole-block path for every code point a codec encodes.
@pytest.mark.parametrize(
    ("codec", "block"),
    [
        ("utf-8", 4096),
        ("utf-8", 1000),
        ("cp1252", 4096),  # five code points below 256 it does not encode, and most above it
        ("shift_jis", 4096),  # the yen sign encodes as the byte that decodes as a backslash
        ("shift_jis", 1),
    ],
)
def test_code_points_found_by_block_are_those_found_one_at_a_time(monkeypatch, codec, block):
    hooks = load_hooks(monkeypatch)
    found = hooks.blockwise_intervals(codec, 0x11000, block)
    assert tuple(spans.intervals for spans in found) == _one_at_a_time(codec, 0x11000)


def test_hypothesis_asks_the_hooks_for_utf8_and_its_own_function_for_other_codecs(monkeypatch):
    hooks = load_hooks(monkeypatch)
    assert charmap.intervals_from_codec is hooks.intervals_from_codec
    encodable, lossy = charmap.intervals_from_codec("utf-8")
    assert encodable.intervals == ((0, 0xD7FF), (0xE000, sys.maxunicode)) and not lossy.intervals
    asked = []
    answer = (IntervalSet([(0, 127)]), IntervalSet())
    monkeypatch.setattr(hooks, "_from_codec", lambda codec: asked.append(codec) or answer)
    assert charmap.intervals_from_codec("cp1252") is answer
    assert asked == ["cp1252"]
