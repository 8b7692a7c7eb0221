"""Names beside ids: from the snapshot that serves, and null (never a guess) for an id it lacks."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.api.names import Names
from shared.api.tags import named_rule
from shared.core.tag_base import HeldRemoval, RuleTags, SiteScoped, TagChange

NAMES = Names(clients={1: "Contoso Ltd"}, tenants={2: "Contoso Limited", 6: "Tailspin Toys LLC"})


def test_an_id_the_snapshot_lacks_is_named_null():
    assert NAMES.client(1) == "Contoso Ltd" and NAMES.client(5) is None
    assert NAMES.tenant(None) is None and NAMES.tenant(99) is None
    assert NAMES.tenant_names([6, 99, 2, 6]) == {
        2: "Contoso Limited",
        6: "Tailspin Toys LLC",
        99: None,
    }


def test_a_computer_level_rule_names_no_computer_as_a_tenant():
    plan = RuleTags(
        software="M365",
        tag="Halo: M365",
        tag_id=1,
        level="computer",
        carrying=[6],  # computer 6, not tenant 6
        should=[7],
        changes=[TagChange(tag="Halo: M365", tag_id=1, add=[7], remove=[6], level="computer")],
        generation="g",
        planned_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    assert named_rule(plan, NAMES).tenant_names == {}


def test_a_rule_entry_names_every_tenant_it_mentions():
    # A plan recorded earlier may name a tenant the serving snapshot no longer holds (98, 99).
    plan = RuleTags(
        software="Huntress",
        tag="Halo: Huntress",
        tag_id=1,
        carrying=[2, 6, 99],
        should=[2],
        changes=[TagChange(tag="Halo: Huntress", tag_id=1, add=[], remove=[])],
        held=HeldRemoval(
            tag="Halo: Huntress", carrying=3, should=1, removing=2, share=0.6667, tenants=[6, 99]
        ),
        offboarding=[98],
        site_scope=[SiteScoped(client_id=1, client_name="Contoso Ltd", immy_tenant_id=2)],
        generation="g",
        planned_at=datetime(2026, 12, 6, tzinfo=UTC),
    )
    named = named_rule(plan, NAMES).model_dump(mode="json")
    assert named["tenant_names"] == {
        "2": "Contoso Limited",
        "6": "Tailspin Toys LLC",
        "98": None,
        "99": None,
    }
    assert named["site_scope"] == [
        {
            "client_id": 1,
            "client_name": "Contoso Ltd",
            "immy_tenant_id": 2,
            "sites": [],
            "computers": [],
            "note": None,
            "immy_tenant_name": "Contoso Limited",
        }
    ]
    # Everything the recorded plan said is still there, unchanged; no numbers were given.
    assert (named["last_changes"], named["clients"], named["numbers_generation"]) == ([], [], None)
    added = ("tenant_names", "site_scope", "last_changes", "clients", "numbers_generation")
    assert {k: v for k, v in named.items() if k not in added} == {
        k: v for k, v in plan.model_dump(mode="json").items() if k != "site_scope"
    }
