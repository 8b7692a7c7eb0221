"""Deployment rules: which HaloPSA contract types and recurring items entitle a client to a software.

Rules are data (stored in Table Storage, imported and exported as JSON), so an admin changes them
without a redeploy. A rule must name at least one contract type or item; everything else is optional.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from shared.core.text import (
    LOOKUP_PATTERN,
    SOFTWARE_PATTERN,
    NameSchema,
    RecordId,
    checked_text,
    integral,
    visible_from_caller,
)

# Table keys may not hold / \ # ? or control characters; a software name becomes a key.
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
MAX_KEY = 512
MAX_SOFTWARE = 100
# Bounds that keep one rule well inside a 64 KiB table property, and every rule together inside
# the generation manifest (one entity): see rule_admin.MAX_RULES.
MAX_CONTRACT_TYPES = 50
MAX_ITEMS = 50
MAX_CLIENT_IDS = 1000
MAX_DETECT = 10
# Every rule's entry sits in the generation's manifest, one table entity: a bounded number of
# bounded rules, well under what the 1 MiB entity holds beside the other rule data.
MAX_RULES = 200
DUPLICATE_SOFTWARE = "duplicate_software"

# The schema states the raw value the checks hold it to; the value is then stripped. The name
# becomes an ImmyBot tag: from a caller (context CALLER) it holds only assigned, visible
# characters; one stored before that rule still reads.
SoftwareName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_SOFTWARE),
    BeforeValidator(checked_text(SOFTWARE_PATTERN, MAX_SOFTWARE)),
    AfterValidator(visible_from_caller),
    NameSchema(MAX_SOFTWARE, SOFTWARE_PATTERN, visible=True),
]
MatchText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    BeforeValidator(checked_text(LOOKUP_PATTERN, 200)),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": LOOKUP_PATTERN}),
]


def normalise(text: str) -> str:
    """Case-, width- and whitespace-insensitive form used to compare HaloPSA names."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


class ItemMatch(BaseModel):
    """One way to recognise a recurring invoice item: by HaloPSA item id, code/SKU, or name."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # Exactly one of the three is given and not null: what _exactly_one checks. Each one's
        # type and bounds are its property's; these only say which is there.
        json_schema_extra={
            "oneOf": [
                {"required": [k], "properties": {k: {"not": {"type": "null"}}}}
                for k in ("id", "code", "name")
            ]
        },
    )

    id: RecordId | None = None
    code: MatchText | None = None
    name: MatchText | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [k for k in ("id", "code", "name") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("an item match names exactly one of id, code or name")
        return self

    def describe(self) -> str:
        """`id 12`, `code S1-CORE` or `name SentinelOne`, for reasons and warnings."""
        if self.id is not None:
            return f"id {self.id}"
        if self.code is not None:
            return f"code {self.code}"
        return f"name {self.name}"


class Rule(BaseModel):
    """A software and what entitles a client to it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        # At least one contract type or item: what _not_empty_and_key_safe checks.
        json_schema_extra={
            "anyOf": [
                {"required": [k], "properties": {k: {"minItems": 1}}}
                for k in ("contract_types", "items")
            ]
        },
    )

    software: SoftwareName
    contract_types: list[MatchText] = Field(default_factory=list, max_length=MAX_CONTRACT_TYPES)
    items: list[ItemMatch] = Field(default_factory=list, max_length=MAX_ITEMS)
    exclude_clients: list[RecordId] = Field(default_factory=list, max_length=MAX_CLIENT_IDS)
    site_ids: list[RecordId] | None = Field(
        default=None,
        max_length=MAX_CLIENT_IDS,
        description="Only these sites are in scope; None means every site.",
    )
    grace_days: Annotated[int, BeforeValidator(integral)] = Field(default=0, ge=0, le=365)
    detect: list[MatchText] = Field(
        default_factory=list,
        max_length=MAX_DETECT,
        description=(
            "Display names that mean the software is installed, looked for in ImmyBot's "
            "inventory (the sync, the reconciliation and the technician tab): case-insensitive, "
            "matching anywhere in the name, `*` any run of characters. Empty: installed is not "
            "known (never guessed from the software name)."
        ),
    )
    offboard_days: Annotated[int | None, BeforeValidator(integral)] = Field(
        default=None,
        ge=1,
        le=365,
        description="Tenants that lost coverage carry the rule's offboarding tag this many days.",
    )

    @model_validator(mode="after")
    def _not_empty_and_key_safe(self) -> Self:
        if not self.contract_types and not self.items:
            raise ValueError("a rule must name at least one contract type or item")
        # The key is what Table Storage holds: normalising can turn a fullwidth solidus into "/"
        # and one character into many.
        if _FORBIDDEN_KEY_CHARS.search(self.key) or len(self.key) > MAX_KEY:
            raise ValueError("software may not contain / \\ # ? or control characters")
        return self

    @property
    def key(self) -> str:
        """The rule's identity: its software name, normalised."""
        return normalise(self.software)

    @property
    def detect_patterns(self) -> list[str]:
        """What to look for in detected software: `detect`, and nothing when it is empty (a
        software's own name is often not its display name: SentinelOne installs as "Sentinel
        Agent", so a guess from the name would report it missing everywhere)."""
        return list(self.detect)


class RuleSet(BaseModel):
    """The JSON import/export format: a list of rules, unique by software."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(max_length=MAX_RULES)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.key in seen:
                # Its own error type: the API answers it with 409, as the schema cannot state it.
                raise PydanticCustomError(
                    DUPLICATE_SOFTWARE,
                    "software '{software}' appears more than once",
                    {"software": rule.software},
                )
            seen.add(rule.key)
        return self


class FieldChange(BaseModel):
    """A member of a rule that an edit dropped or changed, with its value before the edit."""

    model_config = ConfigDict(frozen=True)

    field: str
    change: Literal["dropped", "changed"] = Field(
        description="dropped: back to its default (left out of a PUT, null in a PATCH); "
        "changed: another value."
    )
    before: JsonValue


def rule_changes(before: Rule, after: Rule) -> list[FieldChange]:
    """What `after` no longer holds of `before`, member by member, in the rule's own order."""
    old, new = before.model_dump(mode="json"), after.model_dump(mode="json")
    changes = []
    for name, info in Rule.model_fields.items():
        if old[name] == new[name]:
            continue
        default = info.get_default(call_default_factory=True)
        change: Literal["dropped", "changed"] = "dropped" if new[name] == default else "changed"
        changes.append(FieldChange(field=name, change=change, before=old[name]))
    return changes


def closest(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Known names that look like `name`, best first (for 'did you mean' answers)."""
    by_norm = {normalise(k): k for k in known}
    hits = difflib.get_close_matches(normalise(name), list(by_norm), n=limit, cutoff=0.5)
    return [by_norm[h] for h in hits]
