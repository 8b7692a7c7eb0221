"""Deployment rules: which HaloPSA contract types and recurring items entitle a client to a software.

Rules are data (stored in Table Storage, imported and exported as JSON), so an admin changes them
without a redeploy. A rule must name at least one contract type or item; everything else is optional.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

# Table keys may not hold / \ # ? or control characters; a software name becomes a key.
_FORBIDDEN_KEY_CHARS = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")

SoftwareName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)
]
MatchText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def normalise(text: str) -> str:
    """Case-, width- and whitespace-insensitive form used to compare HaloPSA names."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(folded.split())


class ItemMatch(BaseModel):
    """One way to recognise a recurring invoice item: by HaloPSA item id, code/SKU, or name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int | None = Field(default=None, gt=0)
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

    model_config = ConfigDict(extra="forbid", frozen=True)

    software: SoftwareName
    contract_types: list[MatchText] = Field(default_factory=list)
    items: list[ItemMatch] = Field(default_factory=list)
    exclude_clients: list[int] = Field(default_factory=list)
    site_ids: list[int] | None = Field(
        default=None, description="Only these sites are in scope; None means every site."
    )
    grace_days: int = Field(default=0, ge=0, le=365)
    offboard_days: int | None = Field(
        default=None,
        ge=1,
        le=365,
        description="Tenants that lost coverage carry the rule's offboarding tag this many days.",
    )

    @model_validator(mode="after")
    def _not_empty_and_key_safe(self) -> Self:
        if not self.contract_types and not self.items:
            raise ValueError("a rule must name at least one contract type or item")
        if _FORBIDDEN_KEY_CHARS.search(self.software):
            raise ValueError("software may not contain / \\ # ? or control characters")
        return self

    @property
    def key(self) -> str:
        """The rule's identity: its software name, normalised."""
        return normalise(self.software)


class RuleSet(BaseModel):
    """The JSON import/export format: a list of rules, unique by software."""

    model_config = ConfigDict(extra="forbid")

    rules: list[Rule]

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.key in seen:
                raise ValueError(f"software '{rule.software}' appears more than once")
            seen.add(rule.key)
        return self


def closest(name: str, known: Iterable[str], limit: int = 3) -> list[str]:
    """Known names that look like `name`, best first (for 'did you mean' answers)."""
    by_norm = {normalise(k): k for k in known}
    hits = difflib.get_close_matches(normalise(name), list(by_norm), n=limit, cutoff=0.5)
    return [by_norm[h] for h in hits]
