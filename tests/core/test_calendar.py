"""What ends next: the coverage rules of DESIGN.md section 4, run forward in time."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from shared.core.calendar import CoverageEnd, coverage_end, coverage_ends
from shared.core.rules import ItemMatch, Rule
from shared.core.targets import Snapshot, resolve
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site

TODAY = date(2026, 3, 1)
UNTIL = TODAY + timedelta(days=30)
HUNTRESS = Rule(software="Huntress", contract_types=["Managed Security"], grace_days=7)
STRICT = Rule(software="Huntress", contract_types=["Managed Security"])
S1 = Rule(software="SentinelOne", items=[ItemMatch(id=102)])
CLIENTS = [Client(id=1, name="Contoso"), Client(id=2, name="Fabrikam"), Client(id=3, name="Old")]
ITEMS = [Item(id=102, name="SentinelOne Complete")]
_ids = iter(range(1000, 100000))


def on(offset: int) -> date:
    return TODAY + timedelta(days=offset)


def day(offset: int) -> str:
    return on(offset).isoformat() + "T00:00:00"


def contract(end: str | None, start: str | None = None, client: int = 1, **extra) -> Contract:
    number = next(_ids)
    fields = {"id": number, "client_id": client, "ref": f"MS-{number}"}
    fields |= {"contracttype_name": "Managed Security", "start_date": start, "end_date": end}
    return Contract.model_validate(fields | extra)


def invoice(
    *lines: dict,
    schedule_end: str = "2099-12-31T00:00:00",
    schedule_start: str = day(-400),
    schedule_disabled: bool = False,
    **extra,
) -> RecurringInvoice:
    schedule = {
        "disabled": schedule_disabled,
        "startdate": schedule_start,
        "end_date": schedule_end,
    }
    fields = {"id": -next(_ids), "client_id": 1, "schedule": schedule, "lines": list(lines)}
    return RecurringInvoice.model_validate(fields | extra)


def line(**extra) -> dict:
    fields = {"id": next(_ids), "_itemid": 102, "qty_order": 5, "isinactive": False}
    return fields | extra


def snapshot(contracts=(), invoices=()) -> Snapshot:
    return Snapshot.build(CLIENTS, [], contracts, invoices, ITEMS)


def end_of(rule: Rule, contracts=(), invoices=(), until: date = UNTIL) -> CoverageEnd | None:
    return coverage_end(snapshot(contracts, invoices), rule, 1, TODAY, until)


# -- contracts: ends, grace days, open ends and no dates -------------------------------------------


def test_a_contract_ends_the_day_after_its_end_plus_the_rules_grace_days():
    found = end_of(HUNTRESS, [contract(day(19))])
    assert (found.last_day, found.ends_on, found.days) == (on(26), on(27), 27)
    [why] = found.why
    assert (why.ends_by, why.end_date, why.grace_days, why.last_day) == (
        "contract_end",
        on(19),
        7,
        on(26),
    )
    assert why.describe() == f"contract {why.contract_ref} ends {on(19)} + 7 grace days"
    without_grace = end_of(STRICT, [contract(day(19))])
    assert (without_grace.ends_on, without_grace.why[0].grace_days) == (on(20), 0)


def test_a_contract_already_in_grace_ends_when_the_grace_does():
    lapsed = contract(day(-3), expired=True)  # HaloPSA flags it expired once past its end
    found = end_of(HUNTRESS, [lapsed])
    assert found.ends_on == on(5) and found.days == 5
    assert end_of(STRICT, [lapsed]) is None  # not a target today at all


@pytest.mark.parametrize(
    "end",
    [
        None,  # no end date
        "2099-12-31T00:00:00",  # HaloPSA's open end
        "2150-01-01T00:00:00",  # any year from 2099 is open
        "0001-01-01T00:00:00",  # before 1902: no date
        "1899-12-30T00:00:00",
        "1900-01-01T00:00:00",
    ],
)
def test_open_ends_and_sentinel_dates_never_end(end):
    assert end_of(HUNTRESS, [contract(end, start="1900-01-01T00:00:00")], until=on(366)) is None


def test_an_end_on_the_windows_last_day_is_in_it_and_the_day_after_is_not():
    ends_on_day_30 = contract(day(29))
    assert end_of(STRICT, [ends_on_day_30]).ends_on == UNTIL
    assert end_of(STRICT, [contract(day(30))]) is None


def test_a_contract_that_has_not_started_is_no_target_today():
    assert end_of(HUNTRESS, [contract(day(20), start=day(1))]) is None


# -- two covers at once ----------------------------------------------------------------------------


def test_a_client_covered_by_two_contracts_ends_only_when_the_later_one_does():
    early, late = contract(day(5)), contract(day(15))
    found = end_of(STRICT, [early, late])
    assert found.ends_on == on(16)
    assert [w.contract_id for w in found.why] == [late.id]  # the one left on the last day


def test_two_contracts_ending_on_one_day_are_both_the_reason():
    one, two = contract(day(5)), contract(day(5))
    found = end_of(STRICT, [one, two])
    assert found.ends_on == on(6)
    assert sorted(w.contract_id for w in found.why) == sorted([one.id, two.id])


def test_a_renewal_that_starts_the_day_after_keeps_the_client_covered():
    assert end_of(STRICT, [contract(day(5)), contract(None, start=day(6))]) is None


def test_a_renewal_after_a_gap_ends_coverage_and_says_when_it_resumes():
    found = end_of(STRICT, [contract(day(5)), contract(None, start=day(10))])
    assert (found.ends_on, found.resumes_on) == (on(6), on(10))


def test_a_contract_and_an_invoice_line_cover_until_the_later_of_the_two():
    rule = Rule(software="Both", contract_types=["Managed Security"], items=[ItemMatch(id=102)])
    found = end_of(rule, [contract(day(3))], [invoice(line(enddate=day(12)))])
    assert found.ends_on == on(13)
    assert [w.ends_by for w in found.why] == ["line_end"]


# -- recurring invoices: line, header and schedule ends -------------------------------------------


def test_a_line_ends_by_its_own_end_date():
    bill = invoice(line(enddate=day(9)))
    found = end_of(S1, invoices=[bill])
    [why] = found.why
    assert (found.ends_on, why.ends_by, why.end_date, why.line_id) == (
        on(10),
        "line_end",
        on(9),
        bill.lines[0].id,
    )
    assert why.describe() == (
        f"SentinelOne Complete: line {why.line_id} of invoice {bill.id} ends {on(9)}"
    )


def test_an_invoice_ends_by_its_schedule():
    found = end_of(S1, invoices=[invoice(line(), schedule_end=day(11))])
    assert found.ends_on == on(12) and found.why[0].ends_by == "schedule_end"


def test_an_invoice_ends_by_its_header_end_date():
    found = end_of(S1, invoices=[invoice(line(enddate=day(20)), enddate=day(4))])
    assert found.ends_on == on(5) and found.why[0].ends_by == "invoice_end"


def test_the_first_of_the_line_header_and_schedule_ends_is_the_reason():
    bill = invoice(line(enddate=day(8)), schedule_end=day(8), enddate=day(15))
    [why] = end_of(S1, invoices=[bill]).why
    assert (why.ends_by, why.end_date) == ("line_end", on(8))  # a tie: the narrowest record


def test_an_open_schedule_and_a_sentinel_line_end_never_end():
    bill = invoice(line(enddate="0001-01-01T00:00:00"), schedule_end="2099-12-31T00:00:00")
    assert end_of(S1, invoices=[bill], until=on(366)) is None


def test_a_line_that_starts_later_bridges_an_ending_one():
    bill = invoice(line(enddate=day(9)), line(startdate=day(10), enddate=day(20)))
    assert end_of(S1, invoices=[bill]).ends_on == on(21)


def test_a_disabled_schedule_or_one_not_started_is_no_target_today():
    assert end_of(S1, invoices=[invoice(line(), schedule_start=day(2))]) is None
    assert end_of(S1, invoices=[invoice(line(), schedule_disabled=True)]) is None


# -- the whole calendar ---------------------------------------------------------------------------


def test_the_calendar_lists_each_rule_and_client_soonest_first():
    contracts = [
        contract(day(19), client=2),
        contract(day(3), client=1),
        contract(day(2), client=3),
    ]
    old = Client(id=3, name="Old", inactive=True)  # inactive clients are never targets
    snap = Snapshot.build(
        [*CLIENTS[:2], old], [], contracts, [invoice(line(enddate=day(3)))], ITEMS
    )
    found = coverage_ends(snap, [HUNTRESS, S1], TODAY, UNTIL)
    assert [(e.software, e.client_name, e.ends_on) for e in found] == [
        ("SentinelOne", "Contoso", on(4)),
        ("Huntress", "Contoso", on(11)),
        ("Huntress", "Fabrikam", on(27)),
    ]


def test_a_site_scoped_rule_ends_with_its_sites_cover():
    sites = [Site(id=11, name="HQ", client_id=1), Site(id=12, name="Lab", client_id=1)]
    scoped = Rule(software="Huntress", contract_types=["Managed Security"], site_ids=[11])
    contracts = [contract(day(5), site_id=11), contract(None, site_id=12)]
    snap = Snapshot.build(CLIENTS[:1], sites, contracts, [], ITEMS)
    [found] = coverage_ends(snap, [scoped], TODAY, UNTIL)
    assert found.ends_on == on(6)  # the Lab's open contract is out of the rule's scope


def test_the_calendar_agrees_with_resolving_every_day():
    """Random records, every boundary kind: the first uncovered day found by resolving each day
    of the window in turn is the calendar's, for every rule and client."""
    rng = random.Random(22)

    def when() -> str | None:
        return rng.choice(
            [None, "0001-01-01T00:00:00", "2099-12-31T00:00:00", day(rng.randint(-20, 50))]
        )

    clients = [Client(id=n, name=f"Client {n}") for n in range(1, 41)]
    contracts = [
        contract(when(), start=when(), client=rng.randint(1, 40), expired=rng.random() < 0.2)
        for _ in range(150)
    ]
    invoices = [
        invoice(
            *(line(startdate=when(), enddate=when()) for _ in range(rng.randint(1, 3))),
            schedule_end=when() or "2099-12-31T00:00:00",
            enddate=when(),
            client_id=rng.randint(1, 40),
        )
        for _ in range(80)
    ]
    snap = Snapshot.build(clients, [], contracts, invoices, ITEMS)
    rules = [HUNTRESS, STRICT.model_copy(update={"software": "Strict"}), S1]
    until = on(45)
    found = {
        (e.software, e.client_id): (e.ends_on, e.resumes_on)
        for e in coverage_ends(snap, rules, TODAY, until)
    }
    expected = {}
    for rule in rules:
        covered = [{t.client_id for t in resolve(snap, rule, on(n))} for n in range(46)]
        for client in covered[0]:
            gone = [n for n in range(1, 46) if client not in covered[n]]
            if gone:
                back = [n for n in range(gone[0], 46) if client in covered[n]]
                expected[(rule.software, client)] = (on(gone[0]), on(back[0]) if back else None)
    assert found == expected
    # The data set ends plenty of covers inside the window, some of them only for a while.
    assert len(found) > 10 and any(resumes for _, resumes in found.values())
