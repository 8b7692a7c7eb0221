"""Planning a rule's ImmyBot tag changes, and making them (no storage; a stand-in ImmyBot)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shared.core.rules import Rule
from shared.core.tag_base import TagChange, tag_description
from shared.core.tag_plan import plan_rule, write_groups, write_phases
from shared.immybot.errors import ImmyUnavailable
from shared.records.immybot import ImmyTag, ImmyTenant
from shared.sync.tags import _make
from tests.conftest import target

TODAY = date(2026, 12, 2)
RULE = Rule(software="EDR", contract_types=["Managed"])
TENANTS = {
    i: ImmyTenant(id=i, name=f"T{i}", tenantTagIds=[7] if i in (1, 2, 3) else [])
    for i in range(1, 7)
}


def plan(targets, tags, rule=RULE, **kwargs):
    options = {
        "prefix": "Halo: ",
        "max_drop": 0.3,
        "approved": set(),
        "lost_on": {},
        "today": TODAY,
        "generation": "g1",
        "now": datetime(2026, 12, 2, tzinfo=UTC),
    }
    options.update(kwargs)
    return plan_rule(rule, targets, TENANTS, {t.name.casefold(): t for t in tags}, **options)


MANAGED = ImmyTag(id=7, name="Halo: EDR", description=tag_description("EDR"))


def test_adds_the_missing_and_removes_the_extra_within_the_guard():
    targets = [target(c, t) for c, t in ((1, 1), (2, 2), (3, 3), (4, 4), (5, None))]
    result = plan(targets, [MANAGED])
    assert result.changes == [TagChange(tag="Halo: EDR", tag_id=7, add=[4])]
    shrunk = plan([target(c, c) for c in (1, 2, 4)], [MANAGED], max_drop=0.5)
    assert shrunk.changes[0].remove == [3] and shrunk.held is None
    guarded = plan([target(c, c) for c in (1, 2, 4)], [MANAGED])  # 1 of 3 is over 30%
    assert guarded.changes[0].remove == [] and guarded.changes[0].add == [4]
    assert guarded.held is not None and (guarded.held.removing, guarded.held.share) == (1, 0.3333)


def test_a_same_named_tag_without_the_marker_is_left_alone():
    theirs = ImmyTag(id=7, name="Halo: EDR", description="made by hand")
    result = plan([target(4, 4)], [theirs])
    assert result.changes == [] and "did not create it" in (result.problem or "")


def test_removing_all_is_held_unless_approved():
    held = plan([], [MANAGED])
    assert held.held is not None and held.held.tenants == [1, 2, 3]
    assert held.changes == []
    approved = plan([], [MANAGED], approved={1, 2, 3})
    assert approved.changes[0].remove == [1, 2, 3]


def test_offboarding_tag_for_lost_tenants_inside_the_window():
    rule = RULE.model_copy(update={"offboard_days": 10})
    result = plan(
        [target(c, c) for c in (1, 2, 3)],
        [MANAGED],
        rule=rule,
        lost_on={5: date(2026, 11, 30), 6: date(2026, 10, 1)},
    )
    assert result.offboarding == [5]
    assert result.changes == [
        TagChange(tag="Halo: EDR (offboarding)", tag_id=None, create=True, add=[5])
    ]


def test_tenant_sets_shared_by_tags_go_in_one_request():
    changes = [
        TagChange(tag="a", tag_id=1, add=[1, 2]),
        TagChange(tag="b", tag_id=2, add=[1, 2]),
        TagChange(tag="c", tag_id=3, add=[3], remove=[4]),
    ]
    assert write_groups(changes, "add") == {("tenant", (1, 2)): ["a", "b"], ("tenant", (3,)): ["c"]}
    assert write_groups(changes, "remove") == {("tenant", (4,)): ["c"]}
    on_computers = TagChange(tag="d", tag_id=4, add=[1, 2], level="computer")
    assert write_groups([*changes, on_computers], "add")[("computer", (1, 2))] == ["d"]


class FlakyImmy:
    """Creates and adds succeed; the first removal fails as ImmyBot being down would."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int], list[int]]] = []

    async def create_tag(self, name: str, description: str) -> ImmyTag:
        self.sent.append(("create", [], []))
        return ImmyTag(id=50, name=name, description=description)

    async def add_tenant_tags(self, tenants: list[int], tags: list[int]) -> int:
        self.sent.append(("add", tenants, tags))
        return 1

    async def remove_tenant_tags(self, tenants: list[int], tags: list[int]) -> int:
        raise ImmyUnavailable("POST /api/v1/tenants/remove-tags: HTTP 503")

    async def add_computer_tags(self, computers: list[int], tags: list[int]) -> int:
        self.sent.append(("add computers", computers, tags))
        return 1

    async def remove_computer_tags(self, computers: list[int], tags: list[int]) -> int:
        self.sent.append(("remove computers", computers, tags))
        return 1


async def test_an_immybot_error_mid_way_stops_the_writes_and_says_what_was_done():
    changes = [
        TagChange(tag="new", tag_id=None, create=True, add=[1]),
        TagChange(tag="old", tag_id=7, add=[2], remove=[3]),
    ]
    done: set[tuple[str, str, str]] = set()
    immy = FlakyImmy()
    error = await _make(immy, changes, done)  # type: ignore[arg-type]
    assert error == "POST /api/v1/tenants/remove-tags: HTTP 503"
    assert immy.sent == [("create", [], []), ("add", [1], [50]), ("add", [2], [7])]
    assert done == {("new", "tenant", "create"), ("new", "tenant", "add"), ("old", "tenant", "add")}


async def test_a_rule_moving_to_computers_tags_them_before_its_tenants_lose_the_tag():
    changes = [
        TagChange(tag="Halo: EDR", tag_id=7, add=[3, 4], remove=[9], level="computer"),
        TagChange(tag="Halo: EDR", tag_id=7, remove=[3], level="tenant"),
    ]
    done: set[tuple[str, str, str]] = set()
    immy = FlakyImmy()
    error = await _make(immy, changes, done)  # type: ignore[arg-type]
    assert immy.sent == [("add computers", [3, 4], [7]), ("remove computers", [9], [7])]
    assert error is not None  # the tenant removal failed: tenant 3 keeps the tag, nothing lost
    assert done == {("Halo: EDR", "computer", "add"), ("Halo: EDR", "computer", "remove")}


def test_offboarding_tags_are_added_only_after_the_removals():
    changes = [
        TagChange(tag="Halo: EDR", tag_id=7, add=[1], remove=[3]),
        TagChange(tag="Halo: EDR (offboarding)", tag_id=8, add=[3]),
    ]
    assert write_phases(changes) == [
        ("add", {("tenant", (1,)): ["Halo: EDR"]}),
        ("remove", {("tenant", (3,)): ["Halo: EDR"]}),
        ("add", {("tenant", (3,)): ["Halo: EDR (offboarding)"]}),
    ]


class Untouchable:
    """Stands in for storage and ImmyBot where neither may be used."""

    def __getattr__(self, name):
        raise AssertionError(f"{name} was used")


def test_a_prefix_with_a_hidden_character_writes_no_tag_and_says_so():
    import asyncio

    from shared.settings import load_settings
    from shared.sync.tags import apply_immy_tags

    settings = load_settings(
        halo_base_url="https://msp.halopsa.test",
        halo_client_id="id",
        halo_client_secret="secret",
        tables_connection_string="UseDevelopmentStorage=true",
        immy_tags="apply",
        immy_tag_prefix="Halo\u202e: ",
    )
    now = datetime(2026, 12, 2, tzinfo=UTC)
    result = asyncio.run(apply_immy_tags(settings, Untouchable(), Untouchable(), "g1", now))
    assert result["mode"] == "apply"
    assert result["error"].startswith("IMMY_TAG_PREFIX may not contain U+202E (")
