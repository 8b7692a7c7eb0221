from typing import Annotated, Literal

from pydantic import Field

from shared.api.models import RuleView
from shared.api.openapi_spec import TEXT, Operation, Param, Response, Route, Selector


def test_a_parameter_takes_its_schema_from_its_type():
    param = Param("id", "path", Annotated[int, Field(ge=1, le=9)], "An id.", required=True)
    assert param.render() == {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "An id.",
        "schema": {"type": "integer", "minimum": 1, "maximum": 9},
    }


def test_a_selector_allows_exactly_one_of_its_members():
    selector = Selector("pick", "One of a or b.", {"a": (str, "A."), "b": (str, "B.")})
    schema = selector.render()["schema"]
    assert schema["oneOf"] == [{"required": ["a"]}, {"required": ["b"]}]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["b"] == {"type": "string", "description": "B."}


def test_every_operation_may_answer_401_400_and_its_problem_statuses():
    # 400: every route refuses a query parameter it does not take, or one given twice.
    operation = Operation("get", "op", {200: Response.json(RuleView, "Ok")}, problems=(404,))
    answers = operation.render()["responses"]
    assert set(answers) == {"200", "400", "401", "404"}
    assert answers["400"]["content"]["application/problem+json"]
    assert "content" not in answers["401"]
    assert answers["404"]["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }


def test_an_answer_names_its_model_by_reference_and_its_headers_as_required():
    rendered = Response.json(RuleView, "Created", "Location").render()
    assert rendered["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/RuleView"}}
    }
    assert rendered["headers"] == {"Location": {"schema": {"type": "string"}, "required": True}}


def test_a_route_puts_shared_parameters_on_the_path_and_operations_by_method():
    route = Route(
        "/x/{id}",
        (
            Operation("get", "getX", {200: Response("Ok", {"text/html": TEXT})}),
            Operation("delete", "deleteX", {204: Response("Deleted")}, admin=True),
        ),
        params=(Param("id", "path", Literal["a", "b"], required=True),),
    )
    rendered = route.render()
    assert [p["name"] for p in rendered["parameters"]] == ["id"]
    assert set(rendered) == {"parameters", "get", "delete"}
    assert "security" in rendered["delete"] and "security" not in rendered["get"]


def test_an_operation_s_own_400_answer_is_kept():
    page = Response("Bad ticket id (a page)", {"text/html": {"type": "string"}})
    operation = Operation("get", "op", {200: Response("Ok"), 400: page})
    assert operation.render()["responses"]["400"] == page.render()
