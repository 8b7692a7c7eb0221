"""The tab's indexes of a generation's client records and stored computers, and its ticket memos.

A generation's records never change once written, so what a view read can be kept for as long as
the generation serves (single client records and tenants' computers are kept in
`shared.core.recent.Recent` maps). An `OwnerIndex` keeps one generation's whole partition of
client records, or of stored computers, as the JSON texts the sync wrote, per owner (client, or
ImmyBot tenant): loaded once in the background (one range read per home table), it spares every
later view of any client the Table read. It holds raw text (about 3.4 KB per client, a third of
a kilobyte per computer) and parses only what a view shows.

`RememberedTickets` knows which client this process wrote for a ticket, and holds the memos still
to write, so the writer after the responses sends every waiting memo in one transaction.

The instances live in `shared.store.read_cache`, with the rest of the read side's state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

GenerationKey = tuple[str, str]  # (store identity, generation)
TenantTexts = Mapping[int, Sequence[str]]  # owner id -> the texts of its rows, in order


class OwnerIndex:
    """One generation's rows of a shared partition per owner (JSON texts), or a claim to load
    them: the first caller for a generation is told to load (once), the others use what is
    there. A generation whose texts were too large to keep is refused: nobody loads it again."""

    def __init__(self) -> None:
        self._key: GenerationKey | None = None
        self._texts: TenantTexts | None = None
        self._loading: GenerationKey | None = None
        self._refused: GenerationKey | None = None
        self._lock = threading.Lock()

    def get(self, key: GenerationKey) -> tuple[TenantTexts | None, bool]:
        """(the generation's texts if loaded, whether this caller should load them)."""
        with self._lock:
            if self._key == key and self._texts is not None:
                return self._texts, False
            if key in (self._loading, self._refused):
                return None, False
            self._loading = key
            return None, True

    def put(self, key: GenerationKey, texts: TenantTexts | None) -> None:
        """End a claimed load: keep `texts` (None: the load failed, a later view claims again)
        in place of any older generation's."""
        with self._lock:
            if self._loading == key:
                self._loading = None
            if texts is not None:
                self._key, self._texts = key, texts

    def refuse(self, key: GenerationKey) -> None:
        """End a claimed load without keeping anything, for good (too large to keep)."""
        with self._lock:
            if self._loading == key:
                self._loading = None
            self._refused = key

    def clear(self) -> None:
        """Forget the generation kept and any claim."""
        with self._lock:
            self._key = self._texts = self._loading = self._refused = None


MAX_REMEMBERED = 10_000
TicketKey = tuple[str, int]  # (store identity, ticket id)


@dataclass(frozen=True, slots=True)
class TicketMemo:
    """Which client a ticket belongs to, as a view saw it."""

    ticket_id: int
    client_id: int
    seen_at: datetime


class RememberedTickets:
    """Which client this process has written for a ticket (a repeat view writes nothing; LRU),
    and the memos waiting to be written, per store."""

    def __init__(self, kept: int = MAX_REMEMBERED) -> None:
        self._kept = kept
        self._entries: OrderedDict[TicketKey, int] = OrderedDict()
        self._waiting: dict[str, dict[int, TicketMemo]] = {}
        # Taken for a write not yet done: still known, so a view meanwhile finds the client.
        self._writing: dict[tuple[str, int], TicketMemo] = {}
        self._lock = threading.Lock()

    def written(self, key: TicketKey, client_id: int) -> bool:
        """Whether `client_id` was written for this ticket already."""
        with self._lock:
            if self._entries.get(key) != client_id:
                return False
            self._entries.move_to_end(key)
            return True

    def known(self, identity: str, ticket_id: int) -> int | None:
        """The client this process memoed for a ticket (written, or waiting to be), if any."""
        with self._lock:
            waiting = self._waiting.get(identity, {}).get(ticket_id)
            if waiting is None:
                waiting = self._writing.get((identity, ticket_id))
            if waiting is not None:
                return waiting.client_id
            return self._entries.get((identity, ticket_id))

    def queue(self, identity: str, memo: TicketMemo) -> bool:
        """Hold a memo for the store `identity` (a later one for the same ticket replaces it);
        True when none was waiting: the caller then schedules the one write that takes them all."""
        with self._lock:
            waiting = self._waiting.setdefault(identity, {})
            first = not waiting
            waiting[memo.ticket_id] = memo
            return first

    def take(self, identity: str) -> list[TicketMemo]:
        """Every memo waiting for the store `identity`, in ticket order; none wait afterwards,
        and each stays known until `settle` says how its write ended."""
        with self._lock:
            waiting = self._waiting.pop(identity, {})
            for ticket_id, memo in waiting.items():
                self._writing[(identity, ticket_id)] = memo
        return [waiting[t] for t in sorted(waiting)]

    def settle(self, identity: str, memos: Sequence[TicketMemo], *, written: bool) -> None:
        """End the write of `memos` taken for `identity`: written ones are remembered as such
        (a repeat view writes nothing); failed ones are forgotten, so the next view tries again."""
        with self._lock:
            for memo in memos:
                key = (identity, memo.ticket_id)
                if self._writing.get(key) is memo:
                    del self._writing[key]
                if written:
                    self._entries[key] = memo.client_id
                    self._entries.move_to_end(key)
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
