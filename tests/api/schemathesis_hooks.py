"""Loaded by the Schemathesis command of test_schemathesis.py (its config's `hooks`), never by pytest.

Hypothesis builds a regex's character class by adding its members one at a time, a range by
each code point in it. The document's VisibleName class lists every assigned visible code point
(about 144,000), so each build of it took about 1.6 s of CPU, and Schemathesis meets it in three
spellings (two patterns and their `\\u` escapes) on two threads: most of a slice's time. Two
changes, each exact:
- A class without IGNORECASE is built from its ranges as intervals. Without that flag a member
  adds only its own code point, so the class holds the same code points and the strategy
  (one-character strings over the same intervals) draws the same values.
- A regex's whole strategy is kept per pattern, flags and alphabet: Schemathesis builds the same
  pattern afresh for every operation and phase that meets it, each time with a new, equal
  alphabet. Strategies are immutable values.
A run with and without these sends the same requests in the same order (compared by HAR).
"""

from __future__ import annotations

import re
from functools import wraps
from typing import Any

from hypothesis.internal.intervalsets import IntervalSet
from hypothesis.strategies._internal import regex as hypothesis_regex

_sre = hypothesis_regex.sre
_build = hypothesis_regex.base_regex_strategy
_element = hypothesis_regex._strategy
_built: dict[tuple[Any, ...], Any] = {}


def _character_class(members: Any, flags: re.RegexFlag, alphabet: Any) -> Any:
    """The strategy Hypothesis builds for `[members]`, with ranges added as intervals."""
    builder = hypothesis_regex.CharactersBuilder(
        flags=flags, negate=members[0][0] == _sre.NEGATE, alphabet=alphabet
    )
    spans: list[tuple[int, int]] = []
    for code, value in members:
        if code == _sre.LITERAL:
            spans.append((value, value))
        elif code == _sre.RANGE:
            spans.append(value)
        elif code == _sre.CATEGORY:
            builder.add_category(value)
        elif code != _sre.NEGATE:
            return None
    collected = IntervalSet(sorted(spans))
    builder._intervals |= collected.union(collected)  # union() merges the sorted spans
    return builder.strategy


@wraps(_element)
def _fast_element(codes: Any, context: Any, is_unicode: bool, *, alphabet: Any) -> Any:
    if (
        is_unicode
        and isinstance(codes, tuple)
        and codes[0] == _sre.IN
        and not context.flags & re.IGNORECASE
    ):
        built = _character_class(codes[1], context.flags, alphabet)
        if built is not None:
            return built
    return _element(codes, context, is_unicode, alphabet=alphabet)


@wraps(_build)
def _kept_build(regex: Any, *, parsed: Any = None, alphabet: Any) -> Any:
    # An alphabet is a strategy object, new per call; the code points it allows are its identity.
    allowed = getattr(alphabet, "intervals", None)
    key = (regex.pattern, regex.flags, alphabet if allowed is None else allowed)
    found = _built.get(key)
    if found is None:
        found = _built[key] = _build(regex, parsed=parsed, alphabet=alphabet)
    return found


# _strategy recurses through the module's name, so every class of a pattern takes the fast path.
hypothesis_regex._strategy = _fast_element
hypothesis_regex.base_regex_strategy = _kept_build
