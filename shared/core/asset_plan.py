"""Asset population, the pure part: match ImmyBot computers to HaloPSA assets and plan the writes.

Per mapped client, each ImmyBot computer of its tenant is matched to one of the client's assets, in
this order (the first that decides wins):
1. the ImmyBot computer id in the `ASSET_ID_FIELD` custom field (written by this app on assets it
   created or linked);
2. the serial number (`ASSET_SERIAL_FIELD`), ignoring BIOS placeholders such as "To be filled by
   O.E.M.";
3. the device name (the asset type's key field, `key_field`), case-insensitively.
Two assets for one computer, or one asset for two computers, at any step is *ambiguous*: reported,
never written, and the computer is not created either (a create would be the duplicate MSPs hate).

Ownership: an asset whose `ASSET_MARKER_FIELD` says "created by halo-immy" is the app's; it gets
name, serial and primary user refreshed. Any other matched asset is a human's: only the ImmyBot id
is recorded on it (a *link*), unless `ASSET_UPDATE_MATCHED=true`. Inactive assets still match (so a
computer a human retired is not re-created) but are never written. Nothing is ever deleted or made
inactive: an asset carrying the id of a computer ImmyBot no longer has is listed as *gone*.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from shared.core.asset_match import Ambiguity, match_assets, one_to_one, serial_key
from shared.records.halo import Site, User
from shared.records.halo_assets import AssetRow
from shared.records.immybot import ImmyComputer

MARKER = "created by halo-immy"


@dataclass(frozen=True, slots=True)
class AssetConfig:
    """Which asset type and which HaloPSA fields asset population uses."""

    type_id: int
    name_field: int
    id_field: int
    marker_field: int
    serial_field: int | None = None
    update_matched: bool = False


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AssetCreate(_Model):
    """An asset to create for a computer no asset matched."""

    computer_id: int
    name: str
    serial: str = ""
    site_id: int
    user_id: int | None = Field(default=None, description="The computer's primary user in HaloPSA.")
    site_from: str = Field(description="'primary_user' or 'client_default'.")


class AssetUpdate(_Model):
    """A write to an existing asset: `changes` maps what changes (name, serial, user, immybot_id)
    to its new value."""

    asset_id: int
    computer_id: int
    owned: bool = Field(description="Whether the app created the asset.")
    changes: dict[str, str]


class GoneComputer(_Model):
    """An asset carrying the id of a computer ImmyBot no longer lists, for a human to retire."""

    asset_id: int
    computer_id: int
    name: str
    owned: bool


class Unresolved(_Model):
    """A computer that should get an asset but cannot (no site, no name)."""

    computer_id: int
    reason: str


class ClientAssetPlan(_Model):
    """What asset population does for one mapped client."""

    client_id: int
    tenant_id: int
    computers: int = 0
    matched: int = 0
    creates: list[AssetCreate] = Field(default_factory=list)
    updates: list[AssetUpdate] = Field(default_factory=list)
    links: list[AssetUpdate] = Field(default_factory=list)
    ambiguous: list[Ambiguity] = Field(default_factory=list)
    gone: list[GoneComputer] = Field(default_factory=list)
    unresolved: list[Unresolved] = Field(default_factory=list)

    @property
    def writes(self) -> int:
        """How many assets this client's plan writes."""
        return len(self.creates) + len(self.updates) + len(self.links)

    @property
    def eventful(self) -> bool:
        """Whether the plan holds anything beyond matched, unchanged assets."""
        return bool(self.writes or self.ambiguous or self.gone or self.unresolved)


class AssetCounts(_Model):
    """Totals over every client of a plan."""

    clients: int = 0
    computers: int = 0
    matched: int = 0
    creates: int = 0
    updates: int = 0
    links: int = 0
    ambiguous: int = 0
    gone: int = 0
    unresolved: int = 0


def count_plan(plans: Iterable[ClientAssetPlan]) -> AssetCounts:
    """Sum the per-client plans."""
    totals: dict[str, int] = defaultdict(int)
    for plan in plans:
        totals["clients"] += 1
        totals["computers"] += plan.computers
        totals["matched"] += plan.matched
        totals["creates"] += len(plan.creates)
        totals["updates"] += len(plan.updates)
        totals["links"] += len(plan.links)
        totals["ambiguous"] += len(plan.ambiguous)
        totals["gone"] += len(plan.gone)
        totals["unresolved"] += len(plan.unresolved)
    return AssetCounts(**totals)


def immybot_id_of(asset: AssetRow, config: AssetConfig) -> int | None:
    """The ImmyBot computer id recorded on an asset, if any."""
    text = asset.fields.get(config.id_field, "").strip()
    try:
        value = int(float(text)) if text else None
    except ValueError:
        return None
    return value if value is not None and value > 0 else None


def is_owned(asset: AssetRow, config: AssetConfig) -> bool:
    """Whether the app created the asset (its marker field says so)."""
    return asset.fields.get(config.marker_field, "").strip().casefold() == MARKER


def default_site(sites: Sequence[Site]) -> int | None:
    """The client's default site: its first active site by id.

    HaloPSA creates a client together with its first site (`Area.newclient_sitename`), which is its
    main site unless someone changed `main_site_id`; the snapshot does not carry that id, so the
    earliest active site stands for it (an inference; docs/halopsa-setup.md says so).
    """
    active = sorted((s for s in sites if not s.inactive), key=lambda s: s.id)
    every = sorted(sites, key=lambda s: s.id)
    chosen = active or every
    return chosen[0].id if chosen else None


class UserDirectory:
    """HaloPSA users by e-mail address, to find a computer's primary user in its client."""

    def __init__(self, users: Iterable[User]) -> None:
        self._by_email: dict[str, list[User]] = defaultdict(list)
        for user in users:
            if user.emailaddress.strip():
                self._by_email[user.emailaddress.strip().casefold()].append(user)
        for found in self._by_email.values():
            found.sort(key=lambda u: (u.inactive, u.id))

    def in_client(self, email: str, client_id: int) -> User | None:
        """The client's user with this address (active before inactive), or None."""
        for user in self._by_email.get(email.strip().casefold(), ()):
            if user.client_id == client_id:
                return user
        return None


def plan_client(
    client_id: int,
    tenant_id: int,
    computers: Sequence[ImmyComputer],
    assets: Sequence[AssetRow],
    users: UserDirectory,
    sites: Sequence[Site],
    config: AssetConfig,
) -> ClientAssetPlan:
    """Match one client's computers to its assets and plan the writes (see the module docstring)."""
    present = {c.id: c for c in computers}
    matching = match_assets(
        computers, assets, lambda a: immybot_id_of(a, config), config.serial_field
    )
    plan = ClientAssetPlan(
        client_id=client_id,
        tenant_id=tenant_id,
        computers=len(computers),
        matched=len(matching.matched),
        ambiguous=matching.ambiguous,
    )
    for computer_id, asset in sorted(matching.matched.items()):
        update = _refresh(present[computer_id], asset, users, client_id, config)
        if update is None:
            continue
        if not update.owned and set(update.changes) == {"immybot_id"}:
            plan.links.append(update)
        else:
            plan.updates.append(update)
    fallback = default_site(sites)
    for computer in computers:
        if matching.open(computer):
            _create(plan, computer, users, client_id, fallback, config)
    plan.gone.extend(_gone(assets, present, matching.taken, config))
    return plan


def _gone(
    assets: Iterable[AssetRow],
    present: Mapping[int, ImmyComputer],
    taken: set[int],
    config: AssetConfig,
) -> Iterator[GoneComputer]:
    """Active assets carrying the id of a computer ImmyBot no longer has (nor claimed otherwise)."""
    for asset in assets:
        recorded = immybot_id_of(asset, config)
        if (
            recorded is not None
            and recorded not in present
            and asset.id not in taken
            and not asset.inactive
        ):
            yield GoneComputer(
                asset_id=asset.id,
                computer_id=recorded,
                name=asset.key_field,
                owned=is_owned(asset, config),
            )


def _refresh(
    computer: ImmyComputer,
    asset: AssetRow,
    users: UserDirectory,
    client_id: int,
    config: AssetConfig,
) -> AssetUpdate | None:
    if asset.inactive:
        return None  # a human retired it: matched (so never re-created), never written
    if not asset.has_fields:
        # HaloPSA sent no fields for this row (another asset type on some tenants): what it holds
        # is unknown, so writing would repeat every run. Matched, so never duplicated; not written.
        return None
    owned = is_owned(asset, config)
    changes: dict[str, str] = {}
    if immybot_id_of(asset, config) != computer.id:
        changes["immybot_id"] = str(computer.id)
    if owned or config.update_matched:
        name = computer.name.strip()
        if name and asset.key_field.strip() != name:
            changes["name"] = name
        serial = computer.serial.strip()
        if config.serial_field is not None and serial_key(serial):
            if asset.fields.get(config.serial_field, "").strip() != serial:
                changes["serial"] = serial
        user = users.in_client(computer.primary_user_email, client_id)
        # Without users on the listing the current user is unknown: never rewrite it blindly.
        if user is not None and asset.user_ids is not None and user.id not in asset.user_ids:
            changes["user"] = str(user.id)
    if not changes:
        return None
    return AssetUpdate(asset_id=asset.id, computer_id=computer.id, owned=owned, changes=changes)


def _create(
    plan: ClientAssetPlan,
    computer: ImmyComputer,
    users: UserDirectory,
    client_id: int,
    fallback: int | None,
    config: AssetConfig,
) -> None:
    name = computer.name.strip()
    if not name:
        plan.unresolved.append(
            Unresolved(computer_id=computer.id, reason="the computer has no name")
        )
        return
    user = users.in_client(computer.primary_user_email, client_id)
    site, site_from = fallback, "client_default"
    if user is not None and user.site_id is not None:
        site, site_from = user.site_id, "primary_user"
    if site is None:
        plan.unresolved.append(Unresolved(computer_id=computer.id, reason="the client has no site"))
        return
    serial = computer.serial.strip()
    plan.creates.append(
        AssetCreate(
            computer_id=computer.id,
            name=name,
            serial=serial if config.serial_field is not None and serial_key(serial) else "",
            site_id=site,
            user_id=user.id if user is not None else None,
            site_from=site_from,
        )
    )


def create_body(create: AssetCreate, config: AssetConfig) -> dict[str, Any]:
    """The `POST /api/Asset` array element that creates this asset (no id: HaloPSA assigns one)."""
    fields = [
        {"id": config.name_field, "value": create.name},
        {"id": config.id_field, "value": str(create.computer_id)},
        {"id": config.marker_field, "value": MARKER},
    ]
    if config.serial_field is not None and create.serial:
        fields.append({"id": config.serial_field, "value": create.serial})
    body: dict[str, Any] = {
        "assettype_id": config.type_id,
        "site_id": create.site_id,
        "inactive": False,
        "fields": fields,
    }
    if create.user_id is not None:
        body["users"] = [{"id": create.user_id}]
    return body


def update_body(update: AssetUpdate, config: AssetConfig) -> dict[str, Any]:
    """The `POST /api/Asset` array element that writes only what changes on an existing asset."""
    field_ids = {
        "name": config.name_field,
        "immybot_id": config.id_field,
        "serial": config.serial_field,
    }
    fields = [
        {"id": field_ids[key], "value": value}
        for key, value in update.changes.items()
        if key in field_ids and field_ids[key] is not None
    ]
    body: dict[str, Any] = {"id": update.asset_id}
    if fields:
        body["fields"] = fields
    if "user" in update.changes:
        body["users"] = [{"id": int(update.changes["user"])}]
    return body


def plan_all(
    mapped: Mapping[int, int],
    computers: Iterable[ImmyComputer],
    assets: Iterable[AssetRow],
    users: Iterable[User],
    sites_by_client: Mapping[int, Sequence[Site]],
    config: AssetConfig,
) -> list[ClientAssetPlan]:
    """Plans for every client mapped one to one (client id -> ImmyBot tenant id), in client id
    order (`one_to_one` says why a tenant two clients share is left out)."""
    directory = UserDirectory(users)
    return [
        plan_client(
            side.client_id,
            side.tenant_id,
            side.computers,
            side.assets,
            directory,
            sites_by_client.get(side.client_id, ()),
            config,
        )
        for side in one_to_one(mapped, computers, assets)
    ]
