"""The setup check's answer: one line per requirement, and the Custom Tab URL to paste."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class CheckStatus(StrEnum):
    """How one requirement stands."""

    OK = "ok"
    MISSING = "missing"  # a permission, setting or visibility the app needs is not there
    FAILED = "failed"  # it could not be proven: wrong value, unreachable, an unexpected answer
    SKIPPED = "skipped"  # not needed with these settings, or not provable without a write


class CheckResult(BaseModel):
    """One requirement: what was asked, what came back, and how to fix it."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Stable name, e.g. `halo.read:tickets`.")
    status: CheckStatus
    detail: str = Field(description="What the check saw (no secret, no customer data).")
    fix: str = Field(default="", description="How to fix it; empty when nothing is wrong.")
    required: bool = Field(
        default=True, description="Whether the app needs it with these settings."
    )

    @property
    def passed(self) -> bool:
        """Ok, skipped, or not needed: nothing here stops the app."""
        return self.status in (CheckStatus.OK, CheckStatus.SKIPPED) or not self.required


class SetupReport(BaseModel):
    """Every check, whether the required ones passed, and the HaloPSA Custom Tab URL."""

    ok: bool = Field(description="True when every required check is ok or skipped.")
    checks: list[CheckResult]
    tab_url: str = Field(description="The Custom Tab URL for HaloPSA, without its key.")
    tab_url_note: str


def ok(name: str, detail: str, *, required: bool = True) -> CheckResult:
    """A passed check."""
    return CheckResult(name=name, status=CheckStatus.OK, detail=detail, required=required)


def skipped(name: str, detail: str, fix: str = "", *, required: bool = False) -> CheckResult:
    """A check not run (not needed here, or waiting on another)."""
    return CheckResult(
        name=name, status=CheckStatus.SKIPPED, detail=detail, fix=fix, required=required
    )


def missing(name: str, detail: str, fix: str, *, required: bool = True) -> CheckResult:
    """A permission, setting or visibility the app needs is absent."""
    return CheckResult(
        name=name, status=CheckStatus.MISSING, detail=detail, fix=fix, required=required
    )


def failed(name: str, detail: str, fix: str, *, required: bool = True) -> CheckResult:
    """A requirement that could not be proven."""
    return CheckResult(
        name=name, status=CheckStatus.FAILED, detail=detail, fix=fix, required=required
    )
