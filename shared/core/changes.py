"""What a publish changed, per rule: which clients became or stopped being targets, and why (pure).

Every publish (a sync's swap, an admin's approval of a held generation, an event refresh) and
every rule edit (create, replace, patch, delete, import: applied at once to what serves) compares
the targets that served before it with those that serve after, rule by rule. The decisions:

- **became** / **stopped**: a client that is a target only after / only before the publish.
- **changed**: a client that stays a target while the covers entitling it changed (a contract or
  an invoice line started or stopped covering it: a renewal that replaces the old contract, a
  second line added, one of two contracts ending). Covers are compared by identity (contract id;
  invoice and line id), so what moves on its own without changing who is covered (quantities,
  dates, a contract entering its grace days, a renamed item) is not a change.
- A rule only on one side (a rule new in this publish, or gone from it) is all `became` / all
  `stopped`. The very first publish has nothing before it, so every target `became`: the log
  starts with who the app first published and why.
- Reasons are summarised compactly (`contract MSEC-000003 (Managed Security)`, `invoice -1 line
  101 (SentinelOne Complete)`), at most `MAX_REASONS` per side, so a change stays small whatever
  the client's billing looks like.

Callers may pass any subset of the targets on both sides (an event refresh passes one client's),
as long as both sides hold the same clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.core.rules import normalise
from shared.core.targets import ContractReason, InvoiceLineReason, Target

CauseKind = Literal["sync", "approval", "event", "rule"]
ChangeKind = Literal["became", "stopped", "changed"]
# A change lists at most this many reasons per side; more are counted in a last "... N more".
MAX_REASONS = 20
# HaloPSA text (contract types, item descriptions, client names) is cut to this in a change.
MAX_TEXT = 200
CAUSE_ID_MAX = 64


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Cause(_Model):
    """What published the change: a sync run, an admin's approval of a held run, an event, or
    an edit of the rule itself."""

    kind: CauseKind = Field(
        description="sync: a sync run made its generation current; approval: an admin approved "
        "a held run's generation; event: an event refresh of one client; rule: the rule was "
        "created, replaced, patched, deleted or imported (applied at once to what serves)."
    )
    id: str = Field(
        min_length=1,
        max_length=CAUSE_ID_MAX,
        description="The sync run's id (for an approval, the id of the held run approved; for "
        "an event, the event refresh's id; for a rule edit, the edit's id).",
    )

    def describe(self) -> str:
        """`sync 69dcda6e242c`: the cause in one word and its id."""
        return f"{self.kind} {self.id}"


class Change(_Model):
    """One client that became, stopped being, or stayed a target for other reasons, of one rule."""

    at: datetime = Field(description="When the publish made it what readers see.")
    software: str = Field(description="The rule's software.")
    client_id: int
    client_name: str
    immy_tenant_id: int | None = Field(
        description="The client's ImmyBot tenant when it was a target (after, else before)."
    )
    change: ChangeKind = Field(
        description="became: a target only after; stopped: only before; changed: a target on "
        "both sides whose covers (contracts, invoice lines) differ."
    )
    before: list[str] = Field(description="Its reasons before the publish; empty if none.")
    after: list[str] = Field(description="Its reasons after the publish; empty if none.")
    cause: Cause
    generation: str = Field(description="The generation the publish made current.")


class LastChange(_Model):
    """A client's latest change of one rule, as the tags view shows it."""

    client_id: int
    client_name: str
    immy_tenant_id: int | None
    change: ChangeKind
    at: datetime
    cause: Cause


@dataclass(frozen=True, slots=True)
class RuleTargets:
    """One rule's targets on one side of a publish."""

    software: str
    targets: Sequence[Target]


def summarise(reason: ContractReason | InvoiceLineReason) -> str:
    """One reason in a few words: which contract or invoice line, and what it is."""
    if isinstance(reason, ContractReason):
        ref = reason.ref or f"#{reason.contract_id}"
        grace = ", in grace" if reason.in_grace else ""
        return f"contract {ref} ({reason.contract_type[:MAX_TEXT]}){grace}"
    return f"invoice {reason.invoice_id} line {reason.line_id} ({reason.item[:MAX_TEXT]})"


def summaries(target: Target | None) -> list[str]:
    """A target's reasons summarised, at most MAX_REASONS and a count of the rest."""
    if target is None:
        return []
    texts = [summarise(r) for r in target.reasons]
    if len(texts) > MAX_REASONS:
        rest = len(texts) - MAX_REASONS + 1
        texts = [*texts[: MAX_REASONS - 1], f"... {rest} more"]
    return texts


def covers(target: Target) -> frozenset[tuple[str, int, int]]:
    """What entitles a target, by identity only (see the module docstring)."""
    return frozenset(
        ("contract", r.contract_id, 0)
        if isinstance(r, ContractReason)
        else ("invoice_line", r.invoice_id, r.line_id)
        for r in target.reasons
    )


def diff_targets(
    before: Mapping[str, RuleTargets],
    after: Mapping[str, RuleTargets],
    *,
    at: datetime,
    cause: Cause,
    generation: str,
) -> list[Change]:
    """Every change between two sides of a publish (rule key -> targets), rule by rule (by
    software name) and client by client (by client name, then id)."""
    keys = sorted(set(before) | set(after), key=lambda k: (normalise(_side(k, before, after)), k))
    changes: list[Change] = []
    for key in keys:
        software = _side(key, before, after)
        old = {t.client_id: t for t in before[key].targets} if key in before else {}
        new = {t.client_id: t for t in after[key].targets} if key in after else {}
        for client_id in sorted(old.keys() | new.keys(), key=lambda c: _order(c, old, new)):
            was, now = old.get(client_id), new.get(client_id)
            kind = _kind(was, now)
            if kind is None:
                continue
            either = now or was
            assert either is not None
            changes.append(
                Change(
                    at=at,
                    software=software,
                    client_id=client_id,
                    client_name=either.client_name[:MAX_TEXT],
                    immy_tenant_id=either.immy_tenant_id,
                    change=kind,
                    before=summaries(was),
                    after=summaries(now),
                    cause=cause,
                    generation=generation,
                )
            )
    return changes


def _side(key: str, before: Mapping[str, RuleTargets], after: Mapping[str, RuleTargets]) -> str:
    # The software as the newer side names it (a rule may have been renamed in case only).
    return (after[key] if key in after else before[key]).software


def _order(client_id: int, old: Mapping[int, Target], new: Mapping[int, Target]) -> tuple[str, int]:
    target = new.get(client_id) or old[client_id]
    return normalise(target.client_name), client_id


def _kind(was: Target | None, now: Target | None) -> ChangeKind | None:
    if was is None:
        return "became"
    if now is None:
        return "stopped"
    return "changed" if covers(was) != covers(now) else None


def last_per_client(changes: Iterable[Change]) -> dict[str, list[LastChange]]:
    """Per rule key, each client's latest change, newest first (`changes` newest first)."""
    seen: set[tuple[str, int]] = set()
    out: dict[str, list[LastChange]] = {}
    for change in changes:
        key = normalise(change.software)
        if (key, change.client_id) in seen:
            continue
        seen.add((key, change.client_id))
        out.setdefault(key, []).append(
            LastChange(
                client_id=change.client_id,
                client_name=change.client_name,
                immy_tenant_id=change.immy_tenant_id,
                change=change.change,
                at=change.at,
                cause=change.cause,
            )
        )
    return out
