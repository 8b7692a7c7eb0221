"""The tab's per-generation indexes and its ticket memos, in memory."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.store.tab_cache import OwnerIndex, RememberedTickets, TicketMemo

ONE, TWO = ("store|", "gen-1"), ("store|", "gen-2")


def test_one_caller_loads_a_generation_and_the_others_wait_for_it():
    index = OwnerIndex()
    assert index.get(ONE) == (None, True)  # the first caller loads
    assert index.get(ONE) == (None, False)  # the others read per owner meanwhile
    index.put(ONE, {7: ['{"id":7}']})
    assert index.get(ONE) == ({7: ['{"id":7}']}, False)
    assert index.get(TWO) == (None, True)  # a new generation: loaded again
    index.put(TWO, None)  # the load failed
    assert index.get(TWO) == (None, True)  # a later view tries again
    index.put(TWO, {})
    assert index.get(TWO) == ({}, False) and index.get(ONE) == (None, True)  # one kept at a time


def test_a_generation_too_large_to_keep_is_never_loaded_again():
    index = OwnerIndex()
    assert index.get(ONE) == (None, True)
    index.refuse(ONE)
    assert index.get(ONE) == (None, False)
    assert index.get(TWO) == (None, True)  # the next generation is tried


def test_the_process_knows_the_clients_it_memoed_without_a_read():
    tickets = RememberedTickets()
    memo = TicketMemo(42, 7, datetime.now(UTC))
    assert tickets.known("store|", 42) is None
    assert tickets.queue("store|", memo)  # the first waiting memo schedules the write
    assert not tickets.queue("store|", TicketMemo(43, 8, memo.seen_at))
    assert tickets.known("store|", 42) == 7  # waiting to be written
    assert tickets.known("other|", 42) is None  # another store's memos are its own
    taken = tickets.take("store|")
    assert [m.ticket_id for m in taken] == [42, 43]
    assert tickets.known("store|", 42) == 7  # taken, being written: still known
    tickets.settle("store|", taken, written=True)
    assert tickets.known("store|", 42) == 7 and tickets.written(("store|", 42), 7)


def test_a_memo_being_written_is_still_known_and_a_failed_write_is_forgotten():
    tickets = RememberedTickets()
    memo = TicketMemo(7, 6, datetime(2026, 12, 6, tzinfo=UTC))
    assert tickets.queue("store|", memo)
    taken = tickets.take("store|")
    assert taken == [memo] and tickets.take("store|") == []
    # The write is under way: a view meanwhile still finds the client, and will write again.
    assert tickets.known("store|", 7) == 6 and not tickets.written(("store|", 7), 6)
    tickets.settle("store|", taken, written=False)
    assert tickets.known("store|", 7) is None and not tickets.written(("store|", 7), 6)
    tickets.queue("store|", memo)
    tickets.settle("store|", tickets.take("store|"), written=True)
    assert tickets.known("store|", 7) == 6 and tickets.written(("store|", 7), 6)
