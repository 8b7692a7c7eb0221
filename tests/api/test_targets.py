"""The targets, catalogue and rules API through the registered handlers, against Azurite.

Every JSON answer is checked against the OpenAPI document the app serves.
"""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import azure.functions as func
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec

from sandbox.halo_data import demo_data
from shared.api.models import TargetsResponse
from shared.api.openapi import openapi_document
from shared.api.problems import PROBLEM_JSON
from shared.core.rules import RuleSet
from shared.runtime.process import get_settings, get_store
from shared.sync.run import run_sync
from shared.sync.runs import Outcome
from tests.registry import handler

pytestmark = pytest.mark.integration
DEMO_RULES = Path(__file__).resolve().parents[2] / "sandbox" / "demo_rules.json"
HUNTRESS = ["Contoso Ltd", "Fabrikam, Inc.", "Wide World Importers"]
SENTINELONE = ["Contoso Ltd", "Northwind Traders", "Wide World Importers", "Woodgrove Bank"]


def call(
    name: str, url: str, method: str = "GET", body: bytes = b"", headers=None, route=None, **params
):
    request = func.HttpRequest(
        method, url, body=body, params=params, headers=headers or {}, route_params=route or {}
    )
    return handler(name)(request)


def body_of(response: func.HttpResponse, schema: str | None = None):
    body = json.loads(response.get_body())
    if schema:
        conforms(body, schema)
    return body


def conforms(body, schema: str) -> None:
    document = openapi_document()
    validator = Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": document["components"]}
    )
    errors = sorted(validator.iter_errors(body), key=str)
    assert not errors, [e.message for e in errors[:3]]


def problem_of(response: func.HttpResponse, status: int) -> dict:
    assert response.status_code == status, response.get_body()
    assert response.mimetype == PROBLEM_JSON
    return body_of(response, "Problem")


def rules_put(url_software: str | None, document) -> func.HttpResponse:
    route = {"area": "rules", **({"key": url_software} if url_software else {})}
    return call(
        "rules",
        f"/api/rules/{url_software or ''}",
        "PUT",
        json.dumps(document).encode(),
        route=route,
    )


def put_demo_rules_and_sync() -> None:
    """Put the demo rules through the API, then sync the configured HaloPSA."""
    response = call("rules", "/api/rules", "PUT", DEMO_RULES.read_bytes())
    assert response.status_code == 200
    report = asyncio.run(run_sync())
    assert report.outcome is Outcome.SUCCEEDED, report.error


@pytest.fixture
def demo(configure, halo_sandbox, synced_templates):
    """The demo data set synced into a fresh store with the demo rules (a copy of the store one
    such sync set up in this worker)."""
    sandbox = halo_sandbox(demo_data(date.today()))
    configure(sandbox.url)
    synced_templates.copy("demo, rules put", put_demo_rules_and_sync)
    return sandbox


def names(body) -> list[str]:
    return [t["client_name"] for t in body["targets"]]


def test_targets_for_a_software(demo):
    response = call("targets", "/api/targets", software="huntress")
    assert response.status_code == 200
    body = body_of(response, "TargetsResponse")
    assert names(body) == HUNTRESS
    assert body["software"] == "Huntress"
    assert body["counts"]["targets"] == 3
    assert body["counts"]["by_contract"] == 3
    generation = get_store().current().generation
    assert body["generation"] == generation
    assert response.headers["ETag"].startswith(f'"{generation}.')
    # The spliced answer is byte for byte what the response model itself would serialise.
    assert response.get_body() == TargetsResponse.model_validate(body).model_dump_json().encode()
    reason = body["targets"][0]["reasons"][0]
    assert reason["kind"] == "contract" and reason["contract_type"] == "Managed Security"


def test_sentinelone_quantities_and_matches(demo):
    body = body_of(call("targets", "/api/targets", software="SentinelOne"), "TargetsResponse")
    assert names(body) == SENTINELONE
    by_name = {t["client_name"]: t for t in body["targets"]}
    assert by_name["Contoso Ltd"]["quantity"] == 25
    assert by_name["Northwind Traders"]["reasons"][0]["matched_by"] == "name SentinelOne Complete"
    # The demo table (sandbox/halo_data.py): one SentinelOne line per target.
    lines = {
        name: (
            r["invoice_id"], r["line_id"], r["matched_by"], r["quantity_kind"],
            r["quantity_type"], r["quantity"],
        )
        for name, target in by_name.items()
        for r in target["reasons"]
    }  # fmt: skip
    assert lines == {
        "Contoso Ltd": (-1, 101, "code S1-COMPLETE", "fixed", "fixed", 25),
        "Northwind Traders": (-3, 301, "name SentinelOne Complete", "fixed", "fixed", 8),
        "Wide World Importers": (-6, 601, "code S1-COMPLETE", "calculated", "devices", None),
        "Woodgrove Bank": (-7, 701, "code S1-COMPLETE", "calculated", "subscriptions", 40),
    }
    counts = body["counts"]
    assert counts["quantity_fixed"] == sum(t["quantities"]["fixed"] for t in body["targets"])
    assert counts["quantity_calculated"] == sum(
        t["quantities"]["calculated"] for t in body["targets"]
    )


def test_if_none_match_gives_304(demo):
    first = call("targets", "/api/targets", software="Huntress")
    etag = first.headers["ETag"]
    again = call("targets", "/api/targets", headers={"If-None-Match": etag}, software="Huntress")
    assert again.status_code == 304
    assert again.get_body() == b""
    assert again.headers["ETag"] == etag
    other = call(
        "targets", "/api/targets", headers={"If-None-Match": '"stale"'}, software="Huntress"
    )
    assert other.status_code == 200


def test_unknown_software_is_404_listing_the_known_ones(demo):
    body = problem_of(call("targets", "/api/targets", software="Huntres"), 404)
    assert body["known"] == ["Huntress", "Microsoft 365 Apps", "SentinelOne"]
    assert body["closest"] == ["Huntress"]


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"software": "Huntress", "item": "x"},
        {"softwre": "Huntress"},
        {"software": "   "},
        {"software": "x" * 201},
        {"software": "a\x00b"},
    ],
)
def test_bad_queries_are_400(demo, params):
    body = problem_of(call("targets", "/api/targets", **params), 400)
    assert body["detail"]


def test_function_key_parameter_is_not_a_bad_query(demo):
    assert call("targets", "/api/targets", software="Huntress", code="key").status_code == 200


def test_ad_hoc_contract_type_and_item(demo):
    by_type = body_of(
        call("targets", "/api/targets", contract_type="managed  security"), "TargetsResponse"
    )
    assert by_type["software"] is None
    assert by_type["query"] == {"contract_type": "managed security"}
    assert names(by_type) == HUNTRESS  # grace 0 vs 7 makes no difference in the demo set
    by_item = body_of(call("targets", "/api/targets", item="S1-COMPLETE"), "TargetsResponse")
    assert names(by_item) == ["Contoso Ltd", "Wide World Importers", "Woodgrove Bank"]
    missing = problem_of(call("targets", "/api/targets", contract_type="Managed Securty"), 404)
    assert missing["closest"][0] == "Managed Security"
    problem_of(call("targets", "/api/targets", item="Nothing Like It"), 404)


def test_no_snapshot_yet_is_503_with_retry_after(configure):
    configure("https://msp.halopsa.com")
    response = call("targets", "/api/targets", software="Huntress")
    problem_of(response, 503)
    assert response.headers["Retry-After"] == "60"
    problem_of(call("catalog", "/api/catalog"), 503)


def test_catalog_lists_types_and_items_with_counts(demo):
    body = body_of(call("catalog", "/api/catalog"), "CatalogResponse")
    types = {t["name"]: t for t in body["contract_types"]}
    assert types["Managed Security"]["covered_clients"] == 3
    assert types["Managed Security"]["clients"] >= 5  # inactive and expired contracts count too
    items = {(i["id"], i["name"]): i for i in body["items"]}
    linked = next(
        v for (item_id, name), v in items.items() if item_id and name == "SentinelOne Complete"
    )
    assert linked["clients"] == 2  # Contoso (fixed 25) and Wide World (calculated, unknown)
    assert "S1-COMPLETE" in linked["codes"]
    assert (linked["quantity_fixed"], linked["calculated_unknown"]) == (25, 1)
    # Woodgrove bills a generic item whose line carries the code: the catalogue shows that code.
    generic = next(v for (item_id, _), v in items.items() if item_id == 7)
    assert "S1-COMPLETE" in generic["codes"] and generic["quantity_calculated"] == 40
    # Northwind's line carries only text; it is listed apart, by that text, with no id.
    assert items[(None, "sentinelone COMPLETE")]["clients"] == 1


def test_openapi_document_validates(demo):
    response = call("openapi", "/api/openapi.json")
    document = json.loads(response.get_body())
    validate_spec(document)
    assert "/targets" in document["paths"]


def test_rules_export_round_trips_through_import(demo):
    exported = body_of(call("rules", "/api/rules"), "RuleSet")
    assert [r["software"] for r in exported["rules"]] == [
        "Huntress",
        "Microsoft 365 Apps",
        "SentinelOne",
    ]
    assert RuleSet.model_validate(exported) == RuleSet.model_validate_json(DEMO_RULES.read_text())
    again = call("rules", "/api/rules", "PUT", json.dumps(exported).encode())
    body = body_of(again, "RulesImported")
    assert body["created"] == [] and body["deleted"] == []
    assert body["replaced"] == ["Huntress", "Microsoft 365 Apps", "SentinelOne"]


def test_a_rule_change_takes_effect_without_a_sync(demo):
    before = call("targets", "/api/targets", software="Huntress")
    contoso = next(t["client_id"] for t in json.loads(before.get_body())["targets"])
    response = rules_put(
        "Huntress", {"contract_types": ["Managed Security"], "exclude_clients": [contoso]}
    )
    assert response.status_code == 200
    assert body_of(response, "RuleView")["targets"] == 2
    after = call("targets", "/api/targets", software="Huntress")
    assert names(json.loads(after.get_body())) == HUNTRESS[1:]
    assert after.headers["ETag"] != before.headers["ETag"]
    stale = call(
        "targets",
        "/api/targets",
        headers={"If-None-Match": before.headers["ETag"]},
        software="Huntress",
    )
    assert stale.status_code == 200


def test_creating_and_deleting_a_rule(demo):
    created = rules_put(
        "Backup Agent", {"contract_types": ["Backup"], "items": [{"name": "Cloud Backup"}]}
    )
    assert created.status_code == 201
    assert created.headers["Location"] == "/api/rules/Backup%20Agent"
    view = body_of(created, "RuleView")
    assert view["warnings"] == []
    assert view["targets"] > 0
    assert call("targets", "/api/targets", software="backup agent").status_code == 200
    assert (
        call(
            "rules",
            "/api/rules/Backup Agent",
            "DELETE",
            route={"area": "rules", "key": "Backup Agent"},
        ).status_code
        == 204
    )
    problem_of(call("targets", "/api/targets", software="Backup Agent"), 404)
    problem_of(
        call(
            "rules",
            "/api/rules/Backup Agent",
            "DELETE",
            route={"area": "rules", "key": "Backup Agent"},
        ),
        404,
    )


def test_rule_warnings_name_the_closest_known_names(demo):
    view = body_of(
        rules_put(
            "EDR", {"contract_types": ["Managed Securty"], "items": [{"code": "S1-COMPLEET"}]}
        )
    )
    first, second = view["warnings"]
    assert first.startswith(
        "no current contract type 'Managed Securty' in HaloPSA; did you mean 'Managed Security'"
    )
    assert second.startswith(
        "no current item code 'S1-COMPLEET' in HaloPSA; did you mean 'S1-COMPLETE'"
    )


@pytest.mark.parametrize(
    ("url_software", "body", "status"),
    [
        # A well-formed rule for another software than the URL's conflicts with it.
        ("Huntress", {"software": "SentinelOne", "contract_types": ["x"]}, 409),
        ("Huntress", {"contract_types": []}, 400),
        ("Huntress", ["not", "an", "object"], 400),
        ("Huntress", {"contract_types": ["x"], "surprise": 1}, 400),
        ("A#B", {"contract_types": ["x"]}, 400),
    ],
)
def test_bad_rules_are_refused(demo, url_software, body, status):
    problem_of(rules_put(url_software, body), status)


@pytest.mark.parametrize(
    ("software", "code_point"),
    [
        ("Sentinel\u202eOne", "U+202E"),
        ("Sentinel\u200bOne", "U+200B"),
        ("Tool \ue000", "U+E000"),
        ("Tool \u0378", "U+0378"),
        ("\U0001f469\u200d\U0001f4bb Devices", "U+200D"),
    ],
)
def test_a_software_name_with_a_hidden_or_unassigned_character_is_a_400_naming_it(
    demo, software, code_point
):
    # It would become an ImmyBot tag that looks like another, or shows as a box.
    for url, body in (
        (software, {"contract_types": ["Managed Security"]}),  # the name from the URL
        (software, {"software": software, "contract_types": ["Managed Security"]}),
    ):
        problem = problem_of(rules_put(url, body), 400)
        assert problem["detail"].startswith("software: ") and code_point in problem["detail"]
    imported = json.dumps({"rules": [{"software": software, "contract_types": ["x"]}]})
    problem = problem_of(call("rules", "/api/rules", "PUT", imported.encode()), 400)
    assert problem["detail"].startswith("rules.0.software: ") and code_point in problem["detail"]
    assert [r["software"] for r in body_of(call("rules", "/api/rules"))["rules"]] == [
        "Huntress",
        "Microsoft 365 Apps",
        "SentinelOne",
    ]


def test_emoji_are_assigned_characters_and_may_name_a_software(demo):
    response = rules_put("\U0001f6e1\ufe0f Shield", {"contract_types": ["Managed Security"]})
    assert response.status_code == 201
    assert body_of(response, "RuleView")["rule"]["software"] == "\U0001f6e1\ufe0f Shield"


def test_invalid_json_and_oversized_bodies(demo):
    bad = call("rules", "/api/rules/X", "PUT", b"{nope", route={"area": "rules", "key": "X"})
    assert problem_of(bad, 400)["detail"] == "the body is not valid JSON"
    big = call(
        "rules",
        "/api/rules/X",
        "PUT",
        b"{" + b" " * 300_000 + b"}",
        route={"area": "rules", "key": "X"},
    )
    problem_of(big, 413)


def test_a_rule_edited_during_a_sync_is_carried_into_the_new_generation(demo):
    settings = get_settings()
    store = get_store()

    def edit_mid_sync(generation: str) -> None:
        # The admin's edit lands on the old generation while the sync still holds its own rules.
        assert (
            rules_put(
                "Huntress", {"contract_types": ["Managed Security"], "exclude_clients": [1]}
            ).status_code
            == 200
        )

    report = asyncio.run(run_sync(settings, store=store, before_swap=edit_mid_sync))
    assert report.outcome is Outcome.SUCCEEDED
    body = json.loads(call("targets", "/api/targets", software="Huntress").get_body())
    assert body["generation"] == report.generation
    assert 1 not in [t["client_id"] for t in body["targets"]]


# -- bad input is a 4xx problem, never a 500 --------------------------------------------------


def rule_call(method: str, software: str, body: bytes = b"") -> func.HttpResponse:
    return call(
        "rules", f"/api/rules/{software}", method, body, route={"area": "rules", "key": software}
    )


def mapping_put(client_id: str, document) -> func.HttpResponse:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return call(
        "rules",
        f"/api/mappings/{client_id}",
        "PUT",
        body,
        route={"area": "mappings", "key": client_id},
    )


@pytest.mark.parametrize("value", ["0", "²", "٣", "-94", "99999999999", "2147483648"])
def test_item_values_that_are_no_item_id_are_looked_up_as_names(demo, value):
    # "²".isdigit() is true and int("²") raised; 0 made ItemMatch(id=0) raise: both were 500s.
    body = problem_of(call("targets", "/api/targets", item=value), 404)
    assert body["type"].endswith("/unknown-item")


def test_an_item_id_in_ascii_digits_finds_its_item(demo):
    catalog = body_of(call("catalog", "/api/catalog"))
    item = next(i for i in catalog["items"] if i["id"] and i["name"] == "SentinelOne Complete")
    body = body_of(call("targets", "/api/targets", item=str(item["id"])), "TargetsResponse")
    # Every client billing the item by its id: the ones the catalogue counts for it.
    assert len(names(body)) == item["clients"] > 0
    assert "Contoso Ltd" in names(body)


def test_an_ad_hoc_value_a_rule_name_may_not_hold_still_answers(demo):
    # The ad hoc rule is named after the query; "/" or 200 characters made that name invalid.
    for value in ("S1/COMPLETE", "x" * 200, "Managed Security #2"):
        response = call("targets", "/api/targets", item=value)
        problem_of(response, 404)


def test_all_three_selectors_are_one_400(demo):
    body = problem_of(
        call("targets", "/api/targets", software="Huntress", contract_type="x", item="y"), 400
    )
    assert "not 3" in body["detail"]


@pytest.mark.parametrize("value", ["\r", " ", "a\x00b", "a\x85b", "x" * 201])
def test_bad_lookup_values_are_400(demo, value):
    problem_of(call("targets", "/api/targets", software=value), 400)
    problem_of(call("reconciliation", "/api/reconciliation", software=value), 400)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
@pytest.mark.parametrize("software", ["é" * 600, "a\x01b", "a\x7fb", "x" * 101, " "])
def test_rule_names_no_rule_can_have_are_400(demo, method, software):
    # A 600-character name raised in check_key (a 500, and a closed connection in the devhost).
    body = json.dumps({"contract_types": ["Managed Security"]}).encode()
    problem = problem_of(rule_call(method, software, body if method == "PUT" else b""), 400)
    assert problem["type"].endswith(("/bad-rule-name", "/bad-rule"))


def test_a_name_whose_normalised_form_is_no_table_key(demo):
    body = json.dumps({"contract_types": ["Managed Security"]}).encode()
    # NFKC turns the fullwidth solidus into "/": the schema's pattern excludes it too.
    for method in ("GET", "DELETE", "PUT"):
        problem_of(rule_call(method, "a\uff0fb", body if method == "PUT" else b""), 400)
    # U+FDFA is 18 characters once normalised: 30 of them are past a key's 512. No rule can
    # have that name, so none is found; creating it is refused.
    long_form = "\ufdfa" * 30
    problem_of(rule_call("GET", long_form), 404)
    problem_of(rule_call("DELETE", long_form), 404)
    problem_of(rule_call("PUT", long_form, body), 400)


@pytest.mark.parametrize("body", [b"[" * 5000, b"{" * 5000, b'{"a":' * 3000])
def test_deeply_nested_json_is_400(demo, body):
    # json.loads raised RecursionError: a 500.
    for response in (
        rule_call("PUT", "Huntress", body),
        call("rules", "/api/rules", "PUT", body),
        mapping_put("1", body),
    ):
        assert problem_of(response, 400)["detail"] in (
            "the body is nested too deeply",
            "the body is not valid JSON",
        )


@pytest.mark.parametrize(
    ("client_id", "document", "status"),
    [
        ("1", {"immy_tenant_id": 2147483648}, 400),  # past Int32: Table Storage refused it
        ("1", {"immy_tenant_id": 0}, 400),
        ("1", {"immy_tenant_id": "5"}, 400),
        ("1", {"immy_tenant_id": True}, 400),
        ("1", {"immy_tenant_id": 5, "note": "a\x00b"}, 400),
        ("²", {"immy_tenant_id": 5}, 400),
        ("0", {"immy_tenant_id": 5}, 400),
        ("2147483648", {"immy_tenant_id": 5}, 400),
        ("1", {"halo_client_id": 2, "immy_tenant_id": 5}, 409),
    ],
)
def test_bad_mappings_are_refused(demo, client_id, document, status):
    problem_of(mapping_put(client_id, document), status)


def test_a_whole_number_written_as_a_float_is_an_integer(demo):
    # JSON Schema's integer includes 5.0; "5" and true are not.
    response = mapping_put("1", {"immy_tenant_id": 5.0})
    assert response.status_code in (200, 201)
    assert body_of(response, "MappingSaved")["immy_tenant_id"] == 5


def many_rules(count: int, **extra) -> bytes:
    rules = [
        {"software": f"Tool {n}", "contract_types": ["Managed Security"], **extra}
        for n in range(count)
    ]
    return json.dumps({"rules": rules}).encode()


@pytest.mark.parametrize("count", [201, 2000])
def test_more_rules_than_a_set_holds_are_413_and_store_nothing(demo, count):
    # The manifest outgrew its entity and the rules stayed stored: every later sync failed.
    # A rule set too large to store is a 413, as for rules too large together (it was a 400).
    before = body_of(call("rules", "/api/rules"))
    problem = problem_of(call("rules", "/api/rules", "PUT", many_rules(count)), 413)
    assert problem["type"].endswith("/too-many-rules") and problem["rules"] == count
    assert body_of(call("rules", "/api/rules")) == before
    assert asyncio.run(run_sync()).outcome is Outcome.SUCCEEDED


def test_rules_too_large_together_are_413_and_store_nothing(demo):
    before = body_of(call("rules", "/api/rules"))
    names_ = [f"{'C' * 190} {n}" for n in range(4)]
    body = many_rules(200, contract_types=names_)
    assert len(body) < 256 * 1024  # under the body limit: the storage check refuses it
    problem = problem_of(call("rules", "/api/rules", "PUT", body), 413)
    assert problem["type"].endswith("/rules-too-large")
    assert body_of(call("rules", "/api/rules")) == before


def test_a_software_twice_in_an_import_is_409(demo):
    body = json.dumps(
        {
            "rules": [
                {"software": "Huntress", "contract_types": ["x"]},
                {"software": " huntress", "contract_types": ["y"]},
            ]
        }
    ).encode()
    problem_of(call("rules", "/api/rules", "PUT", body), 409)


def test_the_schema_valid_requests_schemathesis_found_refused_are_accepted(demo):
    # A rule set may be empty, and 200 rules are within the limits.
    assert call("rules", "/api/rules", "PUT", many_rules(200)).status_code == 200
    assert call("rules", "/api/rules", "PUT", b'{"rules": []}').status_code == 200


# -- the OpenAPI document states the contract -------------------------------------------------


def operations():
    document = openapi_document()
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield path, method, operation


def test_every_http_function_is_in_the_document():
    from sandbox.devhost import routes
    from tests.registry import registered

    http, _ = routes(registered().values())
    paths = ["/api" + p for p in openapi_document()["paths"]]
    for route in http:
        assert any(route.pattern.match(p[len("/api/") :]) for p in paths), route.name


def test_every_operation_documents_401_400_and_its_problems():
    # 400: any route refuses a query parameter it does not take.
    for path, method, operation in operations():
        responses = operation["responses"]
        assert "401" in responses and "400" in responses, (path, method)
        for status, response in responses.items():
            if status >= "400" and status != "401":
                assert PROBLEM_JSON in response["content"], (path, method, status)


def test_targets_selectors_are_exactly_one_of_three():
    (selector,) = [
        p
        for p in openapi_document()["paths"]["/targets"]["get"]["parameters"]
        if p["name"] == "selector"
    ]
    assert selector["style"] == "form" and selector["explode"] is True
    assert selector["schema"]["oneOf"] == [
        {"required": ["software"]},
        {"required": ["contract_type"]},
        {"required": ["item"]},
    ]


def test_ids_in_paths_are_positive_32_bit_integers():
    document = openapi_document()
    for path in ("/mappings/{halo_client_id}", "/technician-tab/ticket/{ticket_id}"):
        (param,) = document["paths"][path]["parameters"]
        assert param["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


def test_request_bodies_state_what_the_code_requires():
    schemas = openapi_document()["components"]["schemas"]
    assert schemas["Rule"]["anyOf"]  # a contract type or an item
    assert "software" not in schemas["RuleUpdate"].get("required", [])
    assert schemas["RuleSet"]["properties"]["rules"]["maxItems"] == 200
    mapping = schemas["MappingUpdate"]
    assert mapping["required"] == ["immy_tenant_id"]
    assert mapping["properties"]["immy_tenant_id"]["maximum"] == 2**31 - 1
