"""Which HaloPSA asset is which ImmyBot computer: keys, matching order, ambiguity."""

from __future__ import annotations

import pytest

from shared.core.asset_match import Ambiguity, match_assets, name_key, serial_key
from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer

SERIAL_FIELD = 117
IMMY_FIELD = 150


def computer(cid: int, name: str, serial: str = "") -> ImmyComputer:
    return ImmyComputer.model_validate(
        {"id": cid, "computerName": name, "tenantId": 3, "serialNumber": serial}
    )


def asset(aid: int, name: str, serial: str | None = None, immy: int | None = None) -> AssetRow:
    fields = []
    if serial is not None:
        fields.append({"id": SERIAL_FIELD, "value": serial})
    if immy is not None:
        fields.append({"id": IMMY_FIELD, "value": str(immy)})
    return AssetRow.model_validate({"id": aid, "client_id": 1, "key_field": name, "fields": fields})


def recorded(row: AssetRow) -> int | None:
    value = row.fields.get(IMMY_FIELD)
    return int(value) if value else None


def match(computers, assets, serial_field: int | None = SERIAL_FIELD):
    return match_assets(computers, assets, recorded, serial_field)


def pairs(matching) -> dict[int, int]:
    return {cid: row.id for cid, row in matching.matched.items()}


@pytest.mark.parametrize(
    ("serial", "key"),
    [
        (" ab 12\tCD ", "ab12cd"),
        ("5CG1234XYZ", "5cg1234xyz"),
        ("To Be Filled By O.E.M.", ""),
        ("  Default   String ", ""),
        ("N/A", ""),
        ("0", ""),
        ("", ""),
    ],
)
def test_serial_key_folds_case_and_space_and_drops_placeholders(serial, key):
    assert serial_key(serial) == key


def test_name_key_ignores_case_and_surrounding_space_only():
    assert name_key("  PC-01\n") == "pc-01"
    assert name_key("My PC") == "my pc"
    assert name_key("My PC") != name_key("MyPC")


def test_the_recorded_immybot_id_wins_over_serial_and_name():
    result = match(
        [computer(1, "PC-1", "S1")],
        [asset(10, "PC-1", serial="S1"), asset(11, "OTHER", immy=1)],
    )
    assert pairs(result) == {1: 11}
    assert result.taken == {11}
    assert result.ambiguous == []


def test_serial_comes_before_name_and_only_when_a_serial_field_is_set():
    computers = [computer(1, "PC-1", "s 1")]
    assets = [asset(10, "pc-1"), asset(11, "OTHER", serial="S1")]
    assert pairs(match(computers, assets)) == {1: 11}
    assert pairs(match(computers, assets, serial_field=None)) == {1: 10}


def test_an_asset_taken_by_an_earlier_step_is_not_matched_again():
    result = match(
        [computer(1, "PC-1"), computer(2, "PC-2", "S2")],
        [asset(10, "PC-2", serial="S2", immy=1)],
    )
    assert pairs(result) == {1: 10}
    assert result.open(computer(2, "PC-2"))
    assert not result.open(computer(1, "PC-1"))


def test_placeholder_serials_pair_nothing():
    result = match(
        [computer(1, "PC-1", "To be filled by O.E.M."), computer(2, "PC-2", "Default string")],
        [asset(10, "A", serial="To be filled by O.E.M."), asset(11, "B", serial="default string")],
    )
    assert result.matched == {}
    assert result.ambiguous == []
    assert result.taken == set()


def test_two_assets_for_one_computer_is_an_ambiguity_at_every_step():
    by_name = match([computer(1, "PC-1")], [asset(10, "pc-1"), asset(11, " PC-1 ")])
    assert by_name.ambiguous == [Ambiguity(by="name", computer_ids=[1], asset_ids=[10, 11])]
    assert by_name.matched == {}
    assert by_name.blocked == {1}
    assert by_name.taken == {10, 11}

    by_id = match([computer(1, "PC-1")], [asset(12, "X", immy=1), asset(11, "Y", immy=1)])
    assert by_id.ambiguous == [Ambiguity(by="immybot_id", computer_ids=[1], asset_ids=[11, 12])]
    assert by_id.matched == {}


def test_one_asset_for_two_computers_blocks_both_from_later_steps():
    result = match(
        [computer(2, "PC-2", "S1"), computer(1, "PC-1", "S1")],
        [asset(10, "X", serial="s1"), asset(11, "PC-1")],
    )
    assert result.ambiguous == [Ambiguity(by="serial", computer_ids=[1, 2], asset_ids=[10])]
    assert result.blocked == {1, 2}
    assert result.matched == {}  # PC-1 is not then matched by name
    assert result.taken == {10}
