"""HaloPSA client -> ImmyBot tenant mapping: each kind of mismatch, and the name normaliser."""

from __future__ import annotations

import pytest

from shared.core.mapping import ExplicitMapping, MatchKind, links_of, map_clients, normalise_name
from shared.records.halo import Client
from shared.records.immybot import ImmyTenant

CLIENTS = [
    Client(id=1, name="Contoso Ltd"),
    Client(id=2, name="Fabrikam, Inc."),
    Client(id=3, name="Northwind Traders"),
    Client(id=6, name="Wide World Importers"),
    Client(id=7, name="Woodgrove Bank"),
    Client(id=9, name="Blue Dental Ltd"),
    Client(id=10, name="Blue Dental LLC"),
]
TENANTS = [
    ImmyTenant(id=1, name="Demo MSP (internal)", isMsp=True),
    ImmyTenant(id=2, name="Contoso Limited"),
    ImmyTenant(id=3, name="Fabrikam Inc"),
    ImmyTenant(id=4, name="Northwind Traders"),
    ImmyTenant(id=5, name="Northwind Traders Ltd"),
    ImmyTenant(id=8, name="World Wide Importers"),
    ImmyTenant(id=11, name="Blue Dental Ltd"),
    ImmyTenant(id=12, name="Blue Dental LLC"),
    ImmyTenant(id=13, name="Woodgrove Bank", active=False),
]


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("Contoso Ltd", "contoso"),
        ("Contoso Limited", "contoso"),
        ("Fabrikam, Inc.", "fabrikam"),
        ("  FABRIKAM   INC ", "fabrikam"),
        ("The Müller GmbH & Co. KG", "muller gmbh and"),
        ("Tailspin Toys LLC", "tailspin toys"),
        ("Ltd", ""),
    ],
)
def test_normalise_name(name, normal):
    assert normalise_name(name) == normal


def outcome(explicit=None) -> dict[int, tuple]:
    matches = map_clients(CLIENTS, TENANTS, explicit or {})
    return {cid: (m.kind, m.tenant_id, tuple(m.candidates)) for cid, m in matches.items()}


def test_each_kind_of_mismatch():
    got = outcome()
    assert got[1] == (MatchKind.NAME, 2, ())  # legal suffix differs
    assert got[2] == (MatchKind.NAME, 3, ())  # punctuation differs
    assert got[3] == (MatchKind.AMBIGUOUS, None, (4, 5))  # two tenants share its normalised name
    assert got[6] == (MatchKind.UNMAPPED, None, ())  # really a different name: never guessed
    assert got[7] == (MatchKind.UNMAPPED, None, ())  # the only candidate tenant is inactive
    # Two customers whose names differ only by suffix, in both systems: exact names pair them.
    assert got[9] == (MatchKind.NAME, 11, ())
    assert got[10] == (MatchKind.NAME, 12, ())


def test_an_exact_name_does_not_settle_an_unpaired_collision():
    # Tenant 4 is named exactly like the client, but tenant 5 pairs with no client: which one is
    # live is a human's call.
    (match,) = map_clients([Client(id=3, name="Northwind Traders")], TENANTS, {}).values()
    assert match.kind is MatchKind.AMBIGUOUS
    assert match.candidates == [4, 5]
    assert "map it explicitly" in match.detail


def test_explicit_mapping_wins_and_a_dangling_one_is_reported():
    explicit = {
        6: ExplicitMapping(halo_client_id=6, immy_tenant_id=8),
        3: ExplicitMapping(halo_client_id=3, immy_tenant_id=5),
        7: ExplicitMapping(halo_client_id=7, immy_tenant_id=99),
    }
    got = map_clients(CLIENTS, TENANTS, explicit)
    assert (got[6].kind, got[6].tenant_id, got[6].tenant_name) == (
        MatchKind.EXPLICIT,
        8,
        "World Wide Importers",
    )
    assert (got[3].kind, got[3].tenant_id) == (MatchKind.EXPLICIT, 5)
    assert got[7].kind is MatchKind.UNMAPPED
    assert "99, which does not exist" in got[7].detail


def test_the_msp_tenant_is_never_a_customer():
    clients = [Client(id=50, name="Demo MSP (internal)")]
    assert map_clients(clients, TENANTS, {})[50].kind is MatchKind.UNMAPPED


def test_immybot_links_come_after_explicit_mappings_and_before_names():
    explicit = {1: ExplicitMapping(halo_client_id=1, immy_tenant_id=3)}
    links = {1: 2, 3: 5, 6: 8, 7: 404}  # 404: a link to a tenant ImmyBot no longer lists
    got = map_clients(CLIENTS, TENANTS, explicit, links)
    assert (got[1].kind, got[1].tenant_id) == (MatchKind.EXPLICIT, 3)
    assert (got[3].kind, got[3].tenant_id) == (MatchKind.IMMYBOT_LINK, 5)  # not ambiguous
    assert (got[6].kind, got[6].tenant_id) == (MatchKind.IMMYBOT_LINK, 8)
    assert got[7].kind is MatchKind.UNMAPPED
    assert (got[2].kind, got[2].tenant_id) == (MatchKind.NAME, 3)
    assert links_of(got.values()) == {3: 5, 6: 8}


def test_an_explicit_mapping_may_name_the_msp_tenant():
    clients = [Client(id=50, name="Our MSP")]
    explicit = {50: ExplicitMapping(halo_client_id=50, immy_tenant_id=1)}
    got = map_clients(clients, TENANTS, explicit)[50]
    assert (got.kind, got.tenant_id, got.tenant_name) == (
        MatchKind.EXPLICIT,
        1,
        "Demo MSP (internal)",
    )
