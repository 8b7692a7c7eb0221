"""What the sync tests against the HaloPSA sandbox share: the demo's two rules, settings pointing at
the sandbox and Azurite, and what a reader sees after a run."""

from __future__ import annotations

from datetime import date

from shared.core.rules import ItemMatch, Rule
from shared.settings import Settings, load_settings
from shared.store.repository import Store
from tests.conftest import served

TODAY = date.today()
HUNTRESS = Rule(software="Huntress", contract_types=["Managed Security"])
SENTINELONE = Rule(software="SentinelOne", items=[ItemMatch(name="SentinelOne Complete")])


class SimulatedCrash(BaseException):
    """Stands for the process being killed: nothing in the sync may catch it."""


def settings_for(sandbox, azurite, **overrides) -> Settings:
    values = {
        "halo_base_url": sandbox.url,
        "halo_client_id": "sandbox-client",
        "halo_client_secret": "sandbox-secret",
        "halo_requests_per_minute": 600_000,
        "halo_page_size": 100,
        "halo_read_mode": "rest",
        "tables_connection_string": azurite.connection_string,
        "tables_endpoint": None,
        **overrides,
    }
    return load_settings(**values)


def put_rules(store: Store, *rules: Rule) -> None:
    for rule in rules:
        store.put_rule_document(rule.key, rule.model_dump(mode="json"))


def answers(store: Store) -> dict:
    """Everything a reader can see through the current pointer."""
    return served(store, (HUNTRESS, SENTINELONE))
