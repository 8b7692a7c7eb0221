"""HTTP blueprint of the targets API that the deployment tool (ImmyBot) calls."""

import azure.functions as func

from shared.problems import PROBLEM_JSON, not_implemented

bp = func.Blueprint()


@bp.function_name("targets")
@bp.route(route="targets", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
def targets(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/targets`: deployment targets for a software, contract type or item."""
    answer = not_implemented("The targets API")
    return func.HttpResponse(answer.body(), status_code=answer.status, mimetype=PROBLEM_JSON)
