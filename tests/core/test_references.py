"""Ids a request names against a snapshot's: gone (refused), perhaps newer (a warning), unchecked."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.core.references import Named, check_ids, refusal, warnings

SYNCED = datetime(2026, 12, 6, 15, 32, 19, tzinfo=UTC)
CLIENTS = frozenset({1, 2, 3, 5, 8})  # 4, 6 and 7 deleted


def test_known_ids_pass_without_a_word():
    checked = check_ids([Named("exclude_clients", "HaloPSA client", [1, 8, 8], CLIENTS)])
    assert checked.refused == {} and warnings(checked, SYNCED) == []


def test_an_id_inside_the_known_range_is_gone_and_one_above_it_perhaps_newer():
    checked = check_ids([Named("exclude_clients", "HaloPSA client", [9999, 4, 1, 6], CLIENTS)])
    assert checked.refused == {"exclude_clients": [4, 6]}
    assert refusal(checked, SYNCED) == (
        "exclude_clients: HaloPSA clients 4, 6 are not in the snapshot synced "
        "2026-12-06T15:32:19Z, which holds HaloPSA clients up to id 8 (ids are never reused): "
        "deleted, or never there"
    )
    assert warnings(checked, SYNCED) == [
        "exclude_clients: HaloPSA client 9999 is not in the snapshot synced 2026-12-06T15:32:19Z, "
        "which holds HaloPSA clients up to id 8: perhaps created since; the next sync will tell"
    ]


def test_fields_are_checked_apart_and_each_named():
    checked = check_ids(
        [
            Named("halo_client_id", "HaloPSA client", [7], CLIENTS),
            Named("immy_tenant_id", "ImmyBot tenant", [10], frozenset({1, 2, 11, 12})),
        ]
    )
    assert checked.refused == {"halo_client_id": [7], "immy_tenant_id": [10]}
    text = refusal(checked, SYNCED)
    assert "halo_client_id: HaloPSA client 7 is not" in text
    assert "; immy_tenant_id: ImmyBot tenant 10 is not" in text


def test_with_nothing_to_check_against_the_ids_are_accepted_and_said_to_be_unchecked():
    checked = check_ids(
        [
            Named("immy_tenant_id", "ImmyBot tenant", [3], None, "the snapshot holds no ImmyBot"),
            Named("site_ids", "HaloPSA site", [], None),  # names nothing: nothing to say
        ]
    )
    assert checked.refused == {}
    assert warnings(checked, None) == ["immy_tenant_id: not checked, the snapshot holds no ImmyBot"]


def test_an_empty_snapshot_refuses_nothing():
    checked = check_ids([Named("site_ids", "HaloPSA site", [1], frozenset())])
    assert checked.refused == {}
    (warning,) = warnings(checked, None)
    assert "holds no HaloPSA site" in warning and "at a time unknown" in warning


def test_a_long_list_is_cut_in_the_text_but_not_in_the_refusal():
    gone = check_ids([Named("site_ids", "HaloPSA site", list(range(20)), frozenset({50}))])
    assert gone.refused == {"site_ids": list(range(20))}
    assert "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 ... are not" in refusal(gone, SYNCED)
