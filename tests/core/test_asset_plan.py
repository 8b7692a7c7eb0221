"""The asset planner on its own: matching order, ambiguity, ownership, placeholders, bodies."""

from __future__ import annotations

import dataclasses

from shared.core.asset_match import serial_key
from shared.core.asset_plan import (
    MARKER,
    AssetConfig,
    UserDirectory,
    create_body,
    plan_all,
    plan_client,
    update_body,
)
from shared.records.halo import Site, User
from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer
from shared.sync.assets import asset_config

CONFIG = AssetConfig(type_id=7, name_field=101, id_field=150, marker_field=151, serial_field=117)
SITES = [Site(id=12, name="Branch", client_id=1), Site(id=11, name="HQ", client_id=1)]
USERS = UserDirectory(
    [
        User(id=5, name="Ann", emailaddress="ann@a.example", client_id=1, site_id=12),
        User(id=6, name="Ann elsewhere", emailaddress="ann@a.example", client_id=2, site_id=99),
    ]
)


def computer(cid: int, name: str, serial: str = "", email: str = "") -> ImmyComputer:
    return ImmyComputer.model_validate(
        {"id": cid, "computerName": name, "tenantId": 3, "serialNumber": serial,
         "primaryUserEmail": email}
    )  # fmt: skip


def asset(aid: int, name: str, users: list[int] | None = None, **fields: str) -> AssetRow:
    ids = {"serial": 117, "immy": 150, "marker": 151}
    row = {
        "id": aid,
        "client_id": 1,
        "key_field": name,
        "fields": [{"id": ids[k], "value": v} for k, v in fields.items()],
    }
    if users is not None:
        row["users"] = [{"id": u} for u in users]
    return AssetRow.model_validate(row)


def plan(computers, assets, config=CONFIG):
    return plan_client(1, 3, computers, assets, USERS, SITES, config)


def test_the_immybot_id_wins_over_serial_and_name():
    result = plan(
        [computer(1, "PC-1", "S1")],
        [asset(10, "PC-1", serial="S1"), asset(11, "OTHER", immy="1")],
    )
    assert result.matched == 1 and not result.ambiguous
    assert result.links == [] and result.creates == []


def test_serial_placeholders_never_match_and_names_ignore_case():
    assert serial_key("  To Be Filled By O.E.M. ") == ""
    assert serial_key("Default string") == ""
    assert serial_key("ab 12") == "ab12"
    result = plan(
        [computer(1, "pc-1", "To be filled by O.E.M.")],
        [asset(10, "ELSEWHERE", serial="To be filled by O.E.M."), asset(11, "PC-1")],
    )
    assert [(u.asset_id, u.changes) for u in result.links] == [(11, {"immybot_id": "1"})]


def test_two_assets_for_one_computer_and_one_for_two_are_ambiguous_and_not_created():
    result = plan(
        [computer(1, "A"), computer(2, "B", "S"), computer(3, "B2", "S")],
        [asset(10, "a"), asset(11, "A"), asset(12, "X", serial="S")],
    )
    assert sorted((a.by, a.computer_ids, a.asset_ids) for a in result.ambiguous) == [
        ("name", [1], [10, 11]),
        ("serial", [2, 3], [12]),
    ]
    assert result.creates == [] and result.links == [] and result.updates == []


def test_an_owned_asset_is_refreshed_a_human_one_only_linked():
    computers = [computer(1, "NEW-NAME", "S1", "ann@a.example"), computer(2, "PC-2", "S2")]
    assets = [
        asset(10, "OLD-NAME", users=[], immy="1", marker=MARKER, serial="S0"),
        asset(11, "pc-2-human", serial="S2"),
    ]
    result = plan(computers, assets)
    (update,) = result.updates
    assert update.owned and update.changes == {"name": "NEW-NAME", "serial": "S1", "user": "5"}
    assert update_body(update, CONFIG) == {
        "id": 10,
        "fields": [{"id": 101, "value": "NEW-NAME"}, {"id": 117, "value": "S1"}],
        "users": [{"id": 5}],
    }
    (link,) = result.links
    assert link.asset_id == 11 and link.changes == {"immybot_id": "2"} and not link.owned
    assert update_body(link, CONFIG) == {"id": 11, "fields": [{"id": 150, "value": "2"}]}

    matched = dataclasses.replace(CONFIG, update_matched=True)
    human = plan(computers[1:], assets[1:], matched).updates[0]
    assert human.changes == {"immybot_id": "2", "name": "PC-2"} and not human.owned


def test_an_unknown_user_list_is_never_rewritten_and_inactive_assets_are_never_written():
    computers = [computer(1, "PC-1", "", "ann@a.example"), computer(2, "PC-2")]
    inactive = AssetRow.model_validate(
        {"id": 11, "client_id": 1, "key_field": "PC-2", "inactive": True}
    )
    result = plan(computers, [asset(10, "PC-1", immy="1", marker=MARKER), inactive])
    assert result.updates == [] and result.links == [] and result.creates == []
    assert result.matched == 2


def test_creates_go_to_the_primary_users_site_else_the_first_active_site():
    result = plan(
        [computer(1, "PC-1", "SER1", "ANN@a.example"), computer(2, "PC-2", "System Serial Number")],
        [],
    )
    first, second = result.creates
    assert (first.site_id, first.user_id, first.site_from) == (12, 5, "primary_user")
    assert (second.site_id, second.user_id, second.serial) == (11, None, "")
    assert create_body(first, CONFIG) == {
        "assettype_id": 7,
        "site_id": 12,
        "inactive": False,
        "fields": [
            {"id": 101, "value": "PC-1"},
            {"id": 150, "value": "1"},
            {"id": 151, "value": MARKER},
            {"id": 117, "value": "SER1"},
        ],
        "users": [{"id": 5}],
    }


def test_gone_lists_assets_of_computers_immybot_no_longer_has():
    result = plan(
        [computer(1, "PC-1")],
        [asset(10, "PC-9", immy="9", marker=MARKER), asset(11, "PC-8", immy="8")],
    )
    assert [(g.asset_id, g.computer_id, g.owned) for g in result.gone] == [
        (10, 9, True),
        (11, 8, False),
    ]
    assert [c.computer_id for c in result.creates] == [1]


def test_a_client_without_a_site_is_unresolved_and_a_shared_tenant_is_left_alone():
    result = plan_client(1, 3, [computer(1, "PC-1")], [], USERS, [], CONFIG)
    assert [u.reason for u in result.unresolved] == ["the client has no site"]
    plans = plan_all({1: 3, 2: 3, 4: 5}, [computer(1, "PC-1")], [], [], {}, CONFIG)
    assert [p.client_id for p in plans] == [4]


SETTINGS = {
    "halo_base_url": "https://msp.halopsa.test",
    "halo_client_id": "id",
    "halo_client_secret": "secret",
    "tables_connection_string": "UseDevelopmentStorage=true",
}


def test_asset_settings_are_off_by_default_and_name_what_plan_or_apply_lacks():
    from shared.settings import SettingsError, load_settings

    off = load_settings(**SETTINGS, asset_type_id="", asset_id_field="")
    assert off.asset_sync == "off" and asset_config(off) is None
    assert off.asset_max_creates == 200 and off.asset_update_matched is False
    try:
        load_settings(**SETTINGS, asset_sync="plan", asset_type_id="7", asset_id_field="150")
    except SettingsError as error:
        assert set(error.problems) == {"ASSET_NAME_FIELD", "ASSET_MARKER_FIELD"}
    else:
        raise AssertionError("plan without its fields was accepted")
    on = load_settings(
        **SETTINGS, asset_sync="apply", asset_type_id="7", asset_name_field="101",
        asset_id_field="150", asset_marker_field="151", asset_serial_field="117",
    )  # fmt: skip
    assert asset_config(on) == CONFIG


def test_a_row_listed_without_fields_is_matched_but_never_written():
    row = AssetRow.model_validate(
        {"id": 10, "client_id": 1, "key_field": "PC-1", "has_fields": False}
    )
    result = plan([computer(1, "PC-1")], [row])
    assert result.matched == 1 and result.links == [] and result.creates == []
