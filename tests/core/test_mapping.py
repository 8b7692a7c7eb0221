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


# -- the Microsoft Entra tenant ---------------------------------------------------------------

NORTHWIND = "6f1c2d4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f"
NORTHWIND_LTD = "0b5e2c1a-3d4f-4e5a-8b6c-7d8e9f0a1b2c"
WOODGROVE = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
ZERO = "00000000-0000-0000-0000-000000000000"


def client(client_id: int, name: str, *entra: str) -> Client:
    # As HaloPSA lists it with includeazuretenants=true.
    tenants = [{"client_id": client_id, "azure_tenant_id": e} for e in entra]
    return Client.model_validate({"id": client_id, "name": name, "azure_tenants": tenants})


def tenant(tenant_id: int, name: str, entra: str | None, **flags) -> ImmyTenant:
    # As GET /api/v1/tenants lists it.
    link = {"immyTenantId": tenant_id, "azTenantId": entra} if entra else None
    return ImmyTenant.model_validate(
        {"id": tenant_id, "name": name, "azureTenantLink": link, **flags}
    )


ENTRA_TENANTS = [
    tenant(1, "Demo MSP (internal)", NORTHWIND_LTD, isMsp=True),
    tenant(4, "Northwind Traders", NORTHWIND),
    tenant(5, "Northwind Traders Ltd", NORTHWIND_LTD),
    tenant(10, "Woodgrove Bank", WOODGROVE),
    tenant(11, "Woodgrove Bank Harbor Street", WOODGROVE),
    tenant(12, "Tailspin Toys", ZERO),
    tenant(13, "Fabrikam (old)", "11111111-2222-4333-8444-555555555555", active=False),
]


def test_the_entra_tenant_tells_two_tenants_named_alike_apart():
    # HaloPSA wrote the id in capitals, ImmyBot in lower case: one tenant all the same.
    (match,) = map_clients(
        [client(3, "Northwind Traders", NORTHWIND.upper())], ENTRA_TENANTS, {}
    ).values()
    assert (match.kind, match.tenant_id, match.tenant_name) == (
        MatchKind.ENTRA_TENANT,
        4,
        "Northwind Traders",
    )
    assert NORTHWIND in match.detail
    assert MatchKind.ENTRA_TENANT.value == "entra_tenant"


def test_an_entra_tenant_linked_to_two_immybot_tenants_is_ambiguous_even_where_a_name_fits():
    # Tenant 10 is named exactly like the client, but the exact key says two tenants.
    (match,) = map_clients([client(7, "Woodgrove Bank", WOODGROVE)], ENTRA_TENANTS, {}).values()
    assert (match.kind, match.tenant_id, match.candidates) == (MatchKind.AMBIGUOUS, None, [10, 11])
    assert WOODGROVE in match.detail and "map it explicitly" in match.detail


def test_several_entra_tenants_of_one_client_count_their_immybot_tenants_together():
    two = client(3, "Northwind Traders", NORTHWIND, NORTHWIND_LTD)
    one = client(30, "Northwind Group", NORTHWIND, NORTHWIND.upper())
    got = map_clients([two, one], ENTRA_TENANTS, {})
    assert (got[3].kind, got[3].candidates) == (MatchKind.AMBIGUOUS, [4, 5])
    assert (got[30].kind, got[30].tenant_id) == (MatchKind.ENTRA_TENANT, 4)


def test_explicit_mappings_and_immybot_links_come_before_the_entra_tenant():
    clients = [client(3, "Northwind Traders", NORTHWIND), client(7, "Woodgrove Bank", WOODGROVE)]
    explicit = {3: ExplicitMapping(halo_client_id=3, immy_tenant_id=5)}
    got = map_clients(clients, ENTRA_TENANTS, explicit, links={7: 11})
    assert (got[3].kind, got[3].tenant_id) == (MatchKind.EXPLICIT, 5)
    assert (got[7].kind, got[7].tenant_id) == (MatchKind.IMMYBOT_LINK, 11)
    assert links_of(got.values()) == {7: 11}


def test_the_entra_tenant_comes_before_the_name():
    # The name says tenant 5 exactly; the Entra tenant says 4.
    (match,) = map_clients(
        [client(3, "Northwind Traders Ltd", NORTHWIND)], ENTRA_TENANTS, {}
    ).values()
    assert (match.kind, match.tenant_id) == (MatchKind.ENTRA_TENANT, 4)
    assert links_of([match]) == {}


@pytest.mark.parametrize(
    ("entra", "why"),
    [
        (NORTHWIND_LTD.replace("0b5e", "ffff"), "no ImmyBot tenant has it"),
        ("11111111-2222-4333-8444-555555555555", "only an inactive tenant has it"),
        (ZERO, "the zero GUID pairs nobody, though tenant 12 carries it too"),
    ],
)
def test_an_entra_tenant_that_leads_nowhere_leaves_the_name_to_decide(entra, why):
    clients = [client(6, "Tailspin Toys", entra), client(8, "Fabrikam (old)", entra)]
    got = map_clients(clients, ENTRA_TENANTS, {})
    assert (got[6].kind, got[6].tenant_id) == (MatchKind.NAME, 12), why
    assert got[8].kind is MatchKind.UNMAPPED, why  # its only name match is inactive


def test_the_msp_tenant_is_never_found_by_its_entra_tenant():
    # Tenant 1 (the MSP) shares an Entra tenant with tenant 5: only tenant 5 is a customer's.
    (match,) = map_clients([client(50, "Our MSP", NORTHWIND_LTD)], ENTRA_TENANTS, {}).values()
    assert (match.kind, match.tenant_id) == (MatchKind.ENTRA_TENANT, 5)


def test_names_several_tenants_share_tie_every_client_so_named():
    from shared.core.mapping import clients_named, renamed, shared_names

    keys = shared_names(TENANTS)
    assert keys == {"northwind traders", "blue dental"}  # not the MSP's, not an inactive one's
    named = clients_named(keys, CLIENTS)
    assert named == {
        "northwind traders": [(3, "Northwind Traders")],
        "blue dental": [(9, "Blue Dental Ltd"), (10, "Blue Dental LLC")],
    }
    # Client 10 renamed out of the shared name, client 6 into it: listed where they are now.
    moved = renamed(
        named, keys, [Client(id=10, name="Blue Teeth"), Client(id=6, name="Northwind Traders Ltd")]
    )
    assert moved == {
        "northwind traders": [(3, "Northwind Traders"), (6, "Northwind Traders Ltd")],
        "blue dental": [(9, "Blue Dental Ltd")],
    }
    # Mapping the clients a name ties together alone gives what mapping everyone gives.
    every = map_clients(CLIENTS, TENANTS, {})
    tied = [c for c in CLIENTS if c.id in (9, 10)]
    assert map_clients(tied, TENANTS, {}) == {9: every[9], 10: every[10]}
