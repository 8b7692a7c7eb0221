"""A snapshot with some clients' records replaced: everything else exactly as it was."""

from __future__ import annotations

from shared.core.client_patch import patched_read, records_of, replace_clients, same_records
from shared.core.generation import ClientRecord
from shared.core.targets import Snapshot
from shared.records.halo import Client, Contract, Item, RecurringInvoice, Site


def contract(cid: int, client: int, active: bool = True) -> Contract:
    return Contract(id=cid, client_id=client, contracttype_name="Managed Security", active=active)


def snapshot() -> Snapshot:
    return Snapshot.build(
        [Client(id=1, name="A"), Client(id=2, name="B")],
        [Site(id=10, name="HQ", client_id=1), Site(id=20, name="HQ", client_id=2)],
        [contract(100, 1), contract(200, 2), contract(201, 2)],
        [RecurringInvoice(id=-1, client_id=1), RecurringInvoice(id=-2, client_id=2)],
        [Item(id=5, name="Thing")],
    )


def test_a_clients_records_are_replaced_and_every_other_one_kept():
    base = snapshot()
    fresh = ClientRecord(Client(id=2, name="B"), [], [contract(200, 2, active=False)], [])
    patched = replace_clients(base, [fresh])
    assert records_of(patched, 1) == records_of(base, 1)
    mine = records_of(patched, 2)
    assert mine is not None
    assert [(c.id, c.active) for c in mine.contracts] == [(200, False)]
    assert mine.sites == [] and mine.invoices == []
    assert patched.items == base.items


def test_a_contract_that_moved_to_the_refreshed_client_is_not_kept_twice():
    fresh = ClientRecord(Client(id=1, name="A"), [], [contract(100, 1), contract(201, 1)], [])
    patched = replace_clients(snapshot(), [fresh])
    assert sorted((c.id, c.client_id) for c in patched.contracts) == [(100, 1), (200, 2), (201, 1)]


def test_a_new_client_is_added():
    fresh = ClientRecord(Client(id=3, name="C"), [Site(id=30, name="HQ", client_id=3)], [], [])
    patched = replace_clients(snapshot(), [fresh])
    assert sorted(patched.clients) == [1, 2, 3] and 30 in patched.sites


def test_the_same_records_in_another_order_are_the_same():
    base = records_of(snapshot(), 2)
    assert base is not None
    shuffled = ClientRecord(base.client, base.sites, list(reversed(base.contracts)), base.invoices)
    assert same_records(base, shuffled)
    changed = ClientRecord(base.client, base.sites, base.contracts[:1], base.invoices)
    assert not same_records(base, changed)
    assert not same_records(None, shuffled)


def test_read_counts_lose_the_old_records_and_gain_the_new():
    old = records_of(snapshot(), 2)
    read = {"clients": 2, "sites": 2, "contracts": 3, "invoices": 2, "invoice_lines": 0, "items": 1}
    new = {"clients": 1, "sites": 0, "contracts": 1, "invoices": 0, "invoice_lines": 0}
    assert patched_read(read, [old, None], new) == {
        "clients": 2,
        "sites": 1,
        "contracts": 2,
        "invoices": 1,
        "invoice_lines": 0,
        "items": 1,
    }


def test_patched_targets_are_in_resolve_order_with_only_those_clients_replaced():
    from shared.core.client_patch import patch_targets
    from tests.conftest import target

    def named(client: int, name: str):
        return target(client, None).model_copy(update={"client_name": name})

    old = [named(1, "Alpha"), named(2, "Beta"), named(3, "Gamma")]
    found = patch_targets(old, [named(2, "zeta"), named(4, "Delta")], {2, 4})
    assert [(t.client_id, t.client_name) for t in found] == [
        (1, "Alpha"), (4, "Delta"), (3, "Gamma"), (2, "zeta")]  # fmt: skip
    assert patch_targets(old, [], {2}) == [old[0], old[2]]  # no longer a target
