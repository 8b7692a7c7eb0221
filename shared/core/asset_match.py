"""Which HaloPSA asset is which ImmyBot computer: by recorded ImmyBot id, then serial, then name.

The first key that decides wins; two assets for one computer, or one asset for two computers, at
any step is an `Ambiguity` (see `shared.core.asset_plan` for what the plan does with each outcome).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer

# SMBIOS placeholders vendors and white-box builders leave in the serial number: matching on them
# would pair unrelated machines.
_PLACEHOLDER_SERIALS = frozenset(
    {
        "", "0", "00000000", "none", "null", "n/a", "na", "unknown", "default string",
        "to be filled by o.e.m.", "system serial number", "chassis serial number",
        "not specified", "not applicable", "invalid", "123456789", "0123456789",
    }
)  # fmt: skip
_SPACES = re.compile(r"\s+")


class Ambiguity(BaseModel):
    """Computers and assets that matched each other more than one-to-one: reported, not touched."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    by: str = Field(description="immybot_id, serial or name")
    computer_ids: list[int]
    asset_ids: list[int]


def serial_key(serial: str) -> str:
    """A serial number reduced for comparison; "" for a placeholder that identifies nothing."""
    text = _SPACES.sub(" ", serial).strip().casefold()
    return "" if text in _PLACEHOLDER_SERIALS else text.replace(" ", "")


def name_key(name: str) -> str:
    """A device name reduced for comparison (case and surrounding space ignored)."""
    return name.strip().casefold()


@dataclass(slots=True)
class Matching:
    """One client's computers against its assets: pairs, and what could not be paired cleanly."""

    matched: dict[int, AssetRow] = field(default_factory=dict)  # computer id -> its asset
    matched_by: dict[int, str] = field(
        default_factory=dict
    )  # computer id -> immybot_id, serial, name
    taken: set[int] = field(default_factory=set)  # assets claimed (matched or in an ambiguity)
    blocked: set[int] = field(default_factory=set)  # computers in an ambiguity
    ambiguous: list[Ambiguity] = field(default_factory=list)

    def open(self, computer: ImmyComputer) -> bool:
        """Whether the computer is neither matched nor in an ambiguity."""
        return computer.id not in self.matched and computer.id not in self.blocked


KeyOf = tuple[str, Callable[[ImmyComputer], str], Callable[[AssetRow], str]]


def match_assets(
    computers: Sequence[ImmyComputer],
    assets: Sequence[AssetRow],
    recorded_id: Callable[[AssetRow], int | None],
    serial_field: int | None,
) -> Matching:
    """Match by the ImmyBot id recorded on an asset, then serial (when `serial_field` is set),
    then name; each step sees only what the steps before left open."""
    matching = Matching()
    _match_recorded(matching, computers, assets, recorded_id)
    keys: list[KeyOf] = [("name", lambda c: name_key(c.name), lambda a: name_key(a.key_field))]
    if serial_field is not None:
        keys.insert(
            0,
            (
                "serial",
                lambda c: serial_key(c.serial),
                lambda a: serial_key(a.fields.get(serial_field, "")),
            ),
        )
    for key_of in keys:
        _match_by_key(matching, computers, assets, key_of)
    return matching


def _match_recorded(
    matching: Matching,
    computers: Sequence[ImmyComputer],
    assets: Sequence[AssetRow],
    recorded_id: Callable[[AssetRow], int | None],
) -> None:
    carrying: dict[int, list[AssetRow]] = defaultdict(list)
    for asset in assets:
        recorded = recorded_id(asset)
        if recorded is not None:
            carrying[recorded].append(asset)
    for computer in computers:
        found = carrying.get(computer.id, [])
        matching.taken.update(a.id for a in found)
        if len(found) == 1:
            matching.matched[computer.id] = found[0]
            matching.matched_by[computer.id] = "immybot_id"
        elif found:
            matching.blocked.add(computer.id)
            matching.ambiguous.append(_ambiguity("immybot_id", [computer], found))


def _match_by_key(
    matching: Matching,
    computers: Sequence[ImmyComputer],
    assets: Sequence[AssetRow],
    key_of: KeyOf,
) -> None:
    by, computer_key, asset_key = key_of
    pending: dict[str, list[ImmyComputer]] = defaultdict(list)
    for computer in computers:
        if matching.open(computer):
            key = computer_key(computer)
            if key:
                pending[key].append(computer)
    free: dict[str, list[AssetRow]] = defaultdict(list)
    for asset in assets:
        if asset.id not in matching.taken:
            key = asset_key(asset)
            if key:
                free[key].append(asset)
    for key, group in pending.items():
        found = free.get(key, [])
        if not found:
            continue
        matching.taken.update(a.id for a in found)
        if len(group) == 1 and len(found) == 1:
            matching.matched[group[0].id] = found[0]
            matching.matched_by[group[0].id] = by
        else:
            matching.blocked.update(c.id for c in group)
            matching.ambiguous.append(_ambiguity(by, group, found))


def _ambiguity(by: str, computers: Iterable[ImmyComputer], assets: Iterable[AssetRow]) -> Ambiguity:
    return Ambiguity(
        by=by,
        computer_ids=sorted(c.id for c in computers),
        asset_ids=sorted(a.id for a in assets),
    )


@dataclass(frozen=True, slots=True)
class ClientComputers:
    """A mapped client, its tenant's computers (in id order) and the client's own assets."""

    client_id: int
    tenant_id: int
    computers: list[ImmyComputer]
    assets: list[AssetRow]


def one_to_one(
    mapped: Mapping[int, int], computers: Iterable[ImmyComputer], assets: Iterable[AssetRow]
) -> Iterator[ClientComputers]:
    """Every mapped client (client id -> tenant id) no other client shares its tenant with, with
    what matching it needs, in client id order.

    Two clients mapped to one tenant are left out: whose assets its computers are is a human's call.
    """
    by_tenant: dict[int, list[ImmyComputer]] = defaultdict(list)
    for computer in computers:
        by_tenant[computer.tenant_id].append(computer)
    by_client: dict[int, list[AssetRow]] = defaultdict(list)
    for asset in assets:
        if asset.client_id is not None:
            by_client[asset.client_id].append(asset)
    tenants_used: dict[int, int] = defaultdict(int)
    for tenant_id in mapped.values():
        tenants_used[tenant_id] += 1
    for client_id, tenant_id in sorted(mapped.items()):
        if tenants_used[tenant_id] == 1:
            yield ClientComputers(
                client_id,
                tenant_id,
                sorted(by_tenant.get(tenant_id, []), key=lambda c: c.id),
                by_client.get(client_id, []),
            )
