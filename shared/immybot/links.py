"""ImmyBot's own HaloPSA integration: which tenant each HaloPSA client is linked to.

An MSP running ImmyBot's HaloPSA integration has already linked every client to its tenant; those
links beat guessing by name. The link used is `IMMY_HALO_LINK_ID`, or else the one enabled provider
link that looks like HaloPSA (its name says "Halo"). ImmyBot names provider types by GUID only, and
the HaloPSA type's GUID is not published, so with several candidates none is guessed: set the id.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from shared.immybot.client import ImmyClient
from shared.immybot.errors import ImmyError
from shared.records.immybot import ProviderLink

log = logging.getLogger("halo_immy.immy")


@dataclass(frozen=True, slots=True)
class HaloLinks:
    """HaloPSA client id -> linked ImmyBot tenant id, and which provider link said so."""

    links: dict[int, int] = field(default_factory=dict)
    link_id: int | None = None
    note: str | None = None


def halo_link(found: list[ProviderLink], wanted: int | None) -> tuple[ProviderLink | None, str]:
    """The HaloPSA provider link to read, and why (or why none)."""
    if wanted is not None:
        chosen = next((p for p in found if p.id == wanted), None)
        return chosen, (
            f"provider link {wanted} (IMMY_HALO_LINK_ID)"
            if chosen
            else f"IMMY_HALO_LINK_ID {wanted} is not a provider link in ImmyBot"
        )
    halo = [p for p in found if not p.disabled and "halo" in p.name.casefold()]
    if len(halo) == 1:
        return halo[0], f"provider link {halo[0].id} ({halo[0].name})"
    if not halo:
        return None, "no HaloPSA provider link in ImmyBot"
    ids = ", ".join(str(p.id) for p in halo)
    return None, f"several HaloPSA provider links ({ids}): set IMMY_HALO_LINK_ID"


async def read_halo_links(immy: ImmyClient, link_id: int | None) -> HaloLinks:
    """ImmyBot's client -> tenant links of its HaloPSA integration.

    Never raises for ImmyBot errors: without links, clients are matched by name as before, and the
    reason is in `note`.
    """
    try:
        chosen, why = halo_link(await immy.provider_links(), link_id)
        if chosen is None:
            return HaloLinks(note=why)
        links: dict[int, int] = {}
        for client in await immy.provider_clients(chosen.id):
            external = client.external_client_id.strip()
            if external.isdigit() and client.linked_to_tenant_id is not None:
                links[int(external)] = client.linked_to_tenant_id
    except ImmyError as error:
        log.warning("ImmyBot provider links not read: %s", error)
        return HaloLinks(note=f"provider links not read: {error}")
    return HaloLinks(links=links, link_id=chosen.id, note=why)
