"""What a rule reaches, one computer at a time: ImmyBot's own rules, and a site scope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.reach import (
    NOT_DEPLOYABLE,
    OTHER_SITE,
    SiteScope,
    kind_of,
    kind_reason,
    off_site,
    unplaced,
)
from shared.core.site_links import NO_LINKS, NO_SITE, NOT_COVERED, SiteLink
from shared.core.targets import Quantities, SiteRef, Target
from shared.records.immybot import ImmyComputer

AS_OF = datetime(2026, 12, 2, tzinfo=UTC)
TARGET = Target(
    client_id=1,
    client_name="Contoso",
    immy_tenant_id=2,
    immy_tenant_name=None,
    mapping="name",
    sites=[SiteRef(id=9, name="Lab"), SiteRef(id=2, name="Head Office")],
    quantity=None,
    quantities=Quantities(fixed=0, calculated=0, calculated_unknown=0),
    reasons=[],
)


def seen(days: int | None, **flags: bool) -> ImmyComputer:
    when = None if days is None else AS_OF - timedelta(days=days)
    return ImmyComputer(id=1, tenant_id=2, last_seen=when, **flags)


def test_kinds_follow_immybots_rules():
    assert kind_of(seen(1), AS_OF, 30) == "targeted"
    assert kind_of(seen(30), AS_OF, 30) == "targeted"  # the window's last day still counts
    assert kind_of(seen(31), AS_OF, 30) == "stale"
    assert kind_of(seen(None), AS_OF, 30) == "stale"  # never seen
    assert kind_of(seen(1, isSandbox=True), AS_OF, 30) == "not_deployable"
    assert kind_of(seen(1, excludeFromMaintenance=True), AS_OF, 30) == "not_deployable"
    naive = ImmyComputer(id=1, tenant_id=2, last_seen=datetime(2026, 12, 1))  # read as UTC
    assert kind_of(naive, AS_OF, 30) == "targeted"
    assert kind_reason("targeted", 30) is None
    assert kind_reason("not_deployable", 30) == NOT_DEPLOYABLE
    assert "30 days" in (kind_reason("stale", 30) or "")


def test_a_computer_is_at_the_targets_sites_or_says_why_not():
    links = {
        1: SiteLink(computer_id=1, tenant_id=2, client_id=1, site_id=9),
        2: SiteLink(computer_id=2, tenant_id=2, client_id=1, site_id=1),
        3: SiteLink(computer_id=3, tenant_id=2, client_id=1, site_id=None, note=None),
        4: SiteLink(computer_id=4, tenant_id=2, client_id=5, site_id=9),  # another client's
    }
    scope = SiteScope(links)
    assert off_site(1, TARGET, scope) is None
    assert off_site(2, TARGET, scope) == OTHER_SITE
    assert off_site(3, TARGET, scope) == NO_SITE
    assert off_site(4, TARGET, scope) == OTHER_SITE
    assert off_site(5, TARGET, scope) == NOT_COVERED  # asset population did not match it
    assert off_site(1, TARGET, SiteScope(None)) == NO_LINKS
    assert [unplaced(off_site(c, TARGET, scope)) for c in (1, 2, 3, 4, 5)] == [
        False,
        False,
        True,
        False,
        True,
    ]
