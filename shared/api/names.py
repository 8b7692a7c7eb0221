"""Names beside ids in the admin answers (mappings, asset plan, ImmyBot tags).

The names are the HaloPSA client names and ImmyBot tenant names of the snapshot that serves now:
what the last sync read (ImmyBot's tenants carried over when it could not read them). An id that
snapshot does not hold gets null, never a name from elsewhere or a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.api.current import snapshot_of
from shared.core.targets import Snapshot
from shared.store.repository import Store

NULL_NAME = "The name in the snapshot that serves now; null when it holds no such id."


@dataclass(frozen=True, slots=True)
class Names:
    """Client and tenant names by id; null for an id the snapshot does not hold."""

    clients: Mapping[int, str] = field(default_factory=dict)
    tenants: Mapping[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, snapshot: Snapshot) -> Names:
        """The names a snapshot holds."""
        return cls(
            clients={i: c.name for i, c in snapshot.clients.items()},
            tenants={i: t.name for i, t in snapshot.tenants.items()},
        )

    def client(self, client_id: int | None) -> str | None:
        """The HaloPSA client's name, or None."""
        return None if client_id is None else self.clients.get(client_id)

    def tenant(self, tenant_id: int | None) -> str | None:
        """The ImmyBot tenant's name, or None."""
        return None if tenant_id is None else self.tenants.get(tenant_id)

    def tenant_names(self, ids: Iterable[int]) -> dict[int, str | None]:
        """Each tenant id (in id order) with its name or None."""
        return {i: self.tenant(i) for i in sorted(set(ids))}


def current_names(store: Store) -> Names:
    """The names of the snapshot that serves now (none before the first sync)."""
    pointer = store.current()
    if pointer is None:
        return Names()
    return Names.of(snapshot_of(store, pointer.generation))
