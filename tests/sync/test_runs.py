"""Run records and guard verdicts without storage: bounded properties, reject and empty verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from shared.core.guard import confirmable, empty_verdict, reject_verdict, tenants_verdict
from shared.store.base import CHUNK_CHARS
from shared.sync.runs import Outcome, SyncReport, bounded_json
from shared.sync.status import _summary

NOW = datetime(2026, 12, 2, 21, 0, tzinfo=UTC)


def test_a_report_with_thousands_of_rules_stays_valid_json_under_the_property_limit():
    report = SyncReport(run_id="r1", started_at=NOW, outcome=Outcome.HELD)
    report.targets = {f"software {n:05d} with a long name": n for n in range(5000)}
    report.guard = {"targets": {f"rule{n}": {"before": 10, "after": 1} for n in range(5000)}}
    report.reject_samples = [f"invoices {n}: bad" for n in range(5000)]
    report.error = "x" * 100_000
    properties = report.properties()
    for key, value in properties.items():
        if isinstance(value, str):
            assert len(value) <= CHUNK_CHARS, key
    assert len(json.loads(properties["targets"])) > 100  # shortened, not emptied
    assert "..." in json.loads(properties["targets"])
    summary = _summary({**properties, "run_id": "r1"})
    assert summary.outcome == "held"
    assert len(summary.targets) == len(json.loads(properties["targets"])) - 1


def test_bounded_json_leaves_small_values_alone_and_shortens_lists():
    assert bounded_json({"a": 1}) == '{"a": 1}'
    shortened = json.loads(bounded_json(list(range(10_000)), limit=200))
    assert shortened[-1].startswith("...") and len(json.dumps(shortened)) <= 200
    assert json.loads(bounded_json("y" * 500, limit=100)) == {"...": "502 characters left out"}


def test_old_records_with_plain_reject_counts_still_read():
    summary = _summary(
        {"run_id": "r0", "started_at": NOW, "outcome": "succeeded", "rejected": '{"sites": 2}'}
    )
    assert summary.rejected == {"sites": {"invalid": 2}}


def test_rejects_hold_over_one_percent_only_when_coverage_lost_records():
    read = {"clients": 100, "contracts": 1000, "invoices": 50, "items": 10}
    # 2 of 1000 contracts: 0.2%, not held.
    assert reject_verdict(read, {"contracts": {"invalid": 2}}) is None
    # 20 of 1000: 2%, held, with the causes.
    held = reject_verdict(read, {"contracts": {"invalid": 15, "client rejected": 5}})
    assert held == {
        "contracts": {
            "read": 1000,
            "rejected": 20,
            "share": 0.02,
            "causes": {"invalid": 15, "client rejected": 5},
        }
    }
    # Only items lost records: billing coverage is intact, not held.
    assert reject_verdict(read, {"items": {"invalid": 5}}) is None
    # Every invoice rejected, nothing to compare with: held.
    assert reject_verdict({"invoices": 50}, {"invoices": {"client unknown": 50}})


def test_empty_reads_and_lost_tenants():
    assert empty_verdict({"contracts": 10, "items": 0}, {"contracts": 0}) == {
        "contracts": {"before": 10, "after": 0}
    }
    assert empty_verdict({"contracts": 10}, {"contracts": 3}) is None
    assert tenants_verdict({1, 2, 3, 4}, {1, 2}, 0.3) == {
        "before": 4,
        "after": 2,
        "dropped": 2,
        "share": 0.5,
    }
    assert tenants_verdict({1, 2, 3, 4}, {1, 2, 3, 5}, 0.3) is None
    assert not confirmable({"targets": {}, "rejects": {}})
    assert not confirmable({"empty": {}})
    assert confirmable({"targets": {}, "mapped_tenants": {}})


def test_a_held_reason_cut_short_by_an_older_version_still_reads():
    from shared.sync.status import _reason

    assert _reason('{"targets": {"a": 1}}') == {"targets": {"a": 1}}
    assert "..." in _reason('{"targets": {"a": 1')


def test_a_run_record_cut_mid_json_by_an_older_version_still_reads():
    summary = _summary(
        {"run_id": "r0", "started_at": NOW, "outcome": "held", "targets": '{"a": 1, "b":'}
    )
    assert summary.outcome == "held" and summary.targets == {}
