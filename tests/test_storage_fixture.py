"""The Azurite session fixture gives the tests a real, working Table service."""

from azure.data.tables import TableServiceClient


def test_azurite_round_trips_an_entity(azurite):
    service = TableServiceClient.from_connection_string(azurite.connection_string)
    table = service.create_table_if_not_exists("FixtureCheck")
    table.upsert_entity({"PartitionKey": "p", "RowKey": "r", "Count": 3})
    entity = table.get_entity("p", "r")
    assert entity["Count"] == 3
    assert [t.name for t in service.list_tables()] == ["FixtureCheck"]
