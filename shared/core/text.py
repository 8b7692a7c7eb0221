"""Text rules every boundary shares: one definition per kind of value (names, ids, patterns).

Each rule here is written once as a regular expression and used twice: by the code that checks a
value, and in the OpenAPI document (`pattern`), so the document is the contract the code enforces.
Patterns use only what Python's `re`, ECMA-262 and Rust's regex read alike (character classes with
`\\xNN`/`\\uNNNN` escapes, `^` and `$`), and the code applies them the way Python's JSON Schema
validators do (`re.search`), so a schema-valid value is not refused nor a schema-invalid one
accepted. Known edges: Python's `$` also matches before one trailing newline (the value is then
stripped), and a rule name that normalises (NFKC) past a table key's 512 characters is refused
though the pattern lets it through (`U+FDFA` becomes 18 characters).

Names that become ImmyBot or HaloPSA text are also held to Unicode categories (`refused_character`);
the document states that as one more pattern, computed from the same `unicodedata`, whose astral
characters are written as themselves (a reader of the document needs Unicode-mode regexes).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Table Storage keeps integers as Int32 unless told otherwise, and HaloPSA and ImmyBot ids are
# 32-bit: anything larger is not an id of theirs.
INT32_MAX = 2**31 - 1

# C0 and C1 control characters: never part of a name.
CONTROLS = "\\x00-\\x1f\\x7f-\\x9f"
# What Python's str.split()/str.strip() take for whitespace, besides the controls above. Written
# out, because `\s` differs between the regex engines that read the document.
SPACES = " \\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
# Characters Table Storage refuses in a key (a rule's software name becomes one).
KEY_FORBIDDEN = "/\\\\#?"

LOOKUP_MAX = 200
# ASCII digits only: "²".isdigit() is true, and int("²") raises.
_ID = re.compile(r"[0-9]{1,10}")


def name_pattern(forbidden: str = "") -> str:
    """A name: no controls (nor `forbidden`), at least one visible character.

    Leading and trailing spaces are allowed: the code strips them, as it collapses inner runs.
    """
    return f"^[^{CONTROLS}{forbidden}]*[^{CONTROLS}{SPACES}{forbidden}][^{CONTROLS}{forbidden}]*$"


# Characters whose compatibility form (NFKC, which `rules.normalise` applies to make a rule's key)
# holds / \\ # ? or a control: U+FF0F, the fullwidth solidus, becomes "/". `key_unsafe_class()`
# computes this; a test keeps the two equal.
KEY_UNSAFE_COMPAT = (
    "\\u2047-\\u2049\\u2100-\\u2101\\u2105-\\u2106\\ufe16\\ufe56\\ufe5f\\ufe68\\uff03\\uff0f"
    "\\uff1f\\uff3c"
)
LOOKUP_PATTERN = name_pattern()
SOFTWARE_PATTERN = name_pattern(KEY_FORBIDDEN + KEY_UNSAFE_COMPAT)


def key_unsafe_class() -> str:
    """The character class of code points whose normalised form is not a valid table key."""
    from shared.core.rules import normalise  # rules imports this module

    unsafe = re.compile(f"[{CONTROLS}{KEY_FORBIDDEN}]")
    ranges: list[tuple[int, int]] = []
    for code in range(0xA0, sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) == "Cs" or not unsafe.search(normalise(char)):
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges)


def _escape(code: int) -> str:
    if code > 0xFFFF:
        raise ValueError("astral characters would need \\u{...}, which not every engine reads")
    return f"\\u{code:04x}"


def checked_text(pattern: str, max_length: int) -> Callable[[Any], Any]:
    """A pydantic before-validator holding raw text to `pattern` and `max_length`, as the schema
    states them (the field then strips it). Anything but a string is left to the type check."""

    def check(value: Any) -> Any:
        if not isinstance(value, str) or not value.strip():
            return value  # the type and length checks say what is wrong with these
        if len(value) > max_length:
            raise ValueError(f"must be at most {max_length} characters")
        if not matches(pattern, value):
            forbidden = " or / \\ # ?" if pattern == SOFTWARE_PATTERN else ""
            raise ValueError(f"may not contain control characters{forbidden}")
        return value

    return check


def integral(value: Any) -> Any:
    """A pydantic before-validator: 5.0 is the integer 5, as JSON Schema has it; "5" and true
    stay what they are, for the strict type check to refuse."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# A HaloPSA or ImmyBot record id a caller sends (5.0 is 5): the one type behind every id in a
# body, a query or a route, so the document states the bounds the code holds them to.
RecordId = Annotated[int, Field(ge=1, le=INT32_MAX), BeforeValidator(integral)]


def matches(pattern: str, value: str) -> bool:
    """Whether `value` satisfies a JSON Schema `pattern` (an unanchored search, as JSON Schema has it)."""
    return re.search(pattern, value) is not None


def parse_id(raw: str) -> int | None:
    """`raw` as a positive 32-bit id if it is one in ASCII digits, else None."""
    if not _ID.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= INT32_MAX else None


# -- names that become ImmyBot or HaloPSA text --------------------------------------------------
# A rule's software becomes an ImmyBot tag (`Halo: <software>`) and text in its description. In
# such a name each character must be an assigned, visible one (or a space): these categories are
# refused, by what they do to a name a human reads in ImmyBot's tag list. Emoji are assigned
# symbols (So, with Mn variation selectors and Sk skin tones) and pass; a sequence joined by
# U+200D (ZWJ) or a subdivision flag (tag characters) does not, as its joiners are format
# characters: two such names can look the same and differ.
REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cf": "a format character: invisible, or one that reorders the text around it",
    "Cs": "a surrogate, half of a character",
    "Co": "a private-use character, which shows differently on every machine",
    "Cn": "an unassigned code point",
}
# The validation context key of a value a caller sends (rather than one read back from
# storage): the refusal applies to new input, so a rule stored before it still reads.
FROM_CALLER = "from_caller"
CALLER = {FROM_CALLER: True}


def refused_character(text: str) -> str | None:
    """The first character of `text` a name may not hold, as `U+202E (a format character: ...)`,
    or None. By `unicodedata` of this Python (Unicode 14.0 for 3.11)."""
    for char in text:
        why = REFUSED_CATEGORIES.get(unicodedata.category(char))
        if why is not None:
            return f"U+{ord(char):04X} ({why})"
    return None


def visible_from_caller(value: Any, info: ValidationInfo) -> Any:
    """A pydantic after-validator: a name a caller sends (context CALLER) holds no character
    of REFUSED_CATEGORIES; a 400 names the field (its location) and the code point."""
    if isinstance(value, str) and info.context and info.context.get(FROM_CALLER):
        refused = refused_character(value)
        if refused is not None:
            raise ValueError(f"may not contain {refused}")
    return value


@lru_cache(maxsize=1)
def visible_class() -> str:
    """Every code point outside REFUSED_CATEGORIES as the body of a character class, for the
    document: computed from the same `unicodedata` as `refused_character`, so the two agree.

    The characters a name may hold are listed, not those it may not: generators that read the
    document (Hypothesis, behind Schemathesis) turn an excluded range into a set of characters,
    and the unassigned astral ranges hold hundreds of thousands. BMP code points are written as
    `\\uNNNN` escapes; astral ones as the characters themselves, which Python's `re`, Rust's regex
    and ECMA-262 in Unicode mode read (`\\u{...}` Python's `re` does not). It takes a pass over
    every code point, so it is built when a schema is, never at import."""
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)) in REFUSED_CATEGORIES:
            continue
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code <= 0xFFFF else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in ranges)


@dataclass(frozen=True, slots=True)
class NameSchema:
    """The JSON schema of a name field: its length and `pattern`, and with `visible` also no
    character of REFUSED_CATEGORIES (an `allOf` pattern, built when a schema is asked for)."""

    max_length: int
    pattern: str
    visible: bool = False

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The schema the checks hold the raw value to (replacing the generated one)."""
        schema: JsonSchemaValue = {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_length,
            "pattern": self.pattern,
        }
        if self.visible:
            schema["allOf"] = [{"pattern": visible_pattern()}]
        return schema


def visible_pattern() -> str:
    """The `pattern` of a name with no character of REFUSED_CATEGORIES."""
    return f"^[{visible_class()}]*$"
