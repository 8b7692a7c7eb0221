"""The change diff of a publish: who became, stopped being, or stayed a target for other reasons."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from shared.core.changes import (
    MAX_REASONS,
    Cause,
    Change,
    RuleTargets,
    diff_targets,
    last_per_client,
    summarise,
)
from shared.core.mapping import MatchKind
from shared.core.targets import ContractReason, InvoiceLineReason, Quantities, Target

AT = datetime(2026, 12, 6, 15, 0, tzinfo=UTC)
SYNC = Cause(kind="sync", id="69dcda6e242c")


def contract(contract_id: int, *, ref: str = "", grace: bool = False) -> ContractReason:
    return ContractReason(
        contract_id=contract_id,
        ref=ref or f"MSEC-{contract_id:06d}",
        contract_type="Managed Security",
        start_date=date(2026, 1, 1),
        end_date=None,
        in_grace=grace,
    )


def line(line_id: int, *, quantity: float = 5.0, item: str = "SentinelOne Complete"):
    return InvoiceLineReason(
        invoice_id=-1,
        line_id=line_id,
        item_id=2,
        item=item,
        matched_by="code S1-COMPLETE",
        quantity_kind="fixed",
        quantity_type="fixed",
        quantity=quantity,
        unit_price=6.0,
        start_date=None,
        end_date=None,
    )


def target(client_id: int, *reasons, name: str = "", tenant: int | None = None) -> Target:
    return Target(
        client_id=client_id,
        client_name=name or f"Client {client_id}",
        immy_tenant_id=tenant,
        immy_tenant_name=None,
        mapping=MatchKind.NAME if tenant else MatchKind.UNMAPPED,
        sites=[],
        quantity=None,
        quantities=Quantities(fixed=0, calculated=0, calculated_unknown=0),
        reasons=list(reasons),
    )


def side(**rules: list[Target]) -> dict[str, RuleTargets]:
    return {software.casefold(): RuleTargets(software, found) for software, found in rules.items()}


def diff(before, after) -> list[Change]:
    return diff_targets(before, after, at=AT, cause=SYNC, generation="g2")


def kinds(changes: list[Change]) -> list[tuple[str, int, str]]:
    return [(c.software, c.client_id, c.change) for c in changes]


def test_a_client_that_becomes_a_target_with_its_reasons_after():
    [change] = diff(side(Huntress=[]), side(Huntress=[target(1, contract(3), tenant=7)]))
    assert (change.change, change.client_id, change.client_name) == ("became", 1, "Client 1")
    assert change.before == [] and change.after == ["contract MSEC-000003 (Managed Security)"]
    assert (change.at, change.cause, change.generation) == (AT, SYNC, "g2")
    assert change.immy_tenant_id == 7


def test_a_client_that_stops_keeps_its_reasons_before_and_its_tenant():
    before = side(SentinelOne=[target(1, line(101), tenant=2), target(3, line(301))])
    [change] = diff(before, side(SentinelOne=[target(3, line(301))]))
    assert (change.change, change.client_id) == ("stopped", 1)
    assert change.before == ["invoice -1 line 101 (SentinelOne Complete)"]
    assert change.after == [] and change.immy_tenant_id == 2


def test_a_renewal_that_replaces_the_contract_is_a_change_with_both_reasons():
    before = side(Huntress=[target(1, contract(3))])
    [change] = diff(before, side(Huntress=[target(1, contract(4))]))
    assert change.change == "changed"
    assert change.before == ["contract MSEC-000003 (Managed Security)"]
    assert change.after == ["contract MSEC-000004 (Managed Security)"]


def test_a_second_cover_added_or_one_of_two_ending_is_a_change():
    one, two = target(1, contract(3)), target(1, contract(3), line(101))
    assert kinds(diff(side(Huntress=[one]), side(Huntress=[two]))) == [("Huntress", 1, "changed")]
    assert kinds(diff(side(Huntress=[two]), side(Huntress=[one]))) == [("Huntress", 1, "changed")]


def test_what_moves_by_itself_is_no_change():
    # Same covers: a new quantity, a contract entering its grace days, a renamed item, a new name.
    before = side(
        Huntress=[target(1, contract(3))],
        SentinelOne=[target(1, line(101, quantity=5), tenant=2)],
    )
    after = side(
        Huntress=[target(1, contract(3, grace=True), name="Contoso")],
        SentinelOne=[target(1, line(101, quantity=9, item="S1 Complete"), tenant=2)],
    )
    assert diff(before, after) == []
    assert diff(before, before) == []


def test_a_rule_added_is_every_target_became_and_one_removed_every_target_stopped():
    huntress = [target(2, contract(5)), target(1, contract(3))]
    s1 = [target(4, line(401))]
    changes = diff(side(Huntress=huntress), side(SentinelOne=s1))
    assert kinds(changes) == [
        ("Huntress", 1, "stopped"),
        ("Huntress", 2, "stopped"),
        ("SentinelOne", 4, "became"),
    ]


def test_the_first_publish_records_every_target_as_became():
    changes = diff({}, side(Huntress=[target(1, contract(3))], SentinelOne=[target(1, line(1))]))
    assert kinds(changes) == [("Huntress", 1, "became"), ("SentinelOne", 1, "became")]


def test_changes_are_ordered_by_software_then_client_name_then_id():
    after = side(
        Zeta=[target(1, contract(1))],
        alpha=[
            target(9, contract(2), name="b"),
            target(8, contract(3), name="B"),
            target(7, name="a"),
        ],
    )
    assert kinds(diff({}, after)) == [
        ("alpha", 7, "became"),
        ("alpha", 8, "became"),
        ("alpha", 9, "became"),
        ("Zeta", 1, "became"),
    ]


def test_the_newer_side_names_the_software():
    before = {"huntress": RuleTargets("huntress", [target(1, contract(3))])}
    after = {"huntress": RuleTargets("Huntress", [])}
    [change] = diff(before, after)
    assert change.software == "Huntress"


def test_reasons_are_bounded_and_counted():
    many = target(1, *(line(n) for n in range(MAX_REASONS + 5)))
    [change] = diff(side(S1=[]), side(S1=[many]))
    assert len(change.after) == MAX_REASONS
    assert change.after[-1] == "... 6 more"
    assert change.after[0] == "invoice -1 line 0 (SentinelOne Complete)"


def test_a_reason_in_a_few_words():
    assert summarise(contract(3, grace=True)) == "contract MSEC-000003 (Managed Security), in grace"
    no_ref = contract(3).model_copy(update={"ref": ""})
    assert summarise(no_ref) == "contract #3 (Managed Security)"
    assert summarise(line(7, item="x" * 500)) == f"invoice -1 line 7 ({'x' * 200})"


def test_a_cause_is_one_of_four_kinds_with_a_bounded_id():
    assert Cause(kind="approval", id="abc").describe() == "approval abc"
    assert Cause(kind="event", id="client-42").kind == "event"
    assert Cause(kind="rule", id="0123456789ab").describe() == "rule 0123456789ab"
    for bad in (
        {"kind": "edit", "id": "x"},
        {"kind": "sync", "id": ""},
        {"kind": "sync", "id": "x" * 65},
    ):
        with pytest.raises(ValidationError):
            Cause.model_validate(bad)


def test_the_last_change_per_client_and_rule_from_a_newest_first_log():
    newer = diff(side(Huntress=[target(1, contract(3))]), side(Huntress=[]))
    older = diff({}, side(Huntress=[target(1, contract(3)), target(2, contract(4), tenant=5)]))
    last = last_per_client([*newer, *older])
    assert [(c.client_id, c.change, c.immy_tenant_id) for c in last["huntress"]] == [
        (1, "stopped", None),
        (2, "became", 5),
    ]
