"""HTTP blueprint of the page HaloPSA shows in a ticket's Custom Tab iframe."""

import azure.functions as func

from shared.problems import PROBLEM_JSON, not_implemented

bp = func.Blueprint()


@bp.function_name("technician_tab")
@bp.route(
    route="technician-tab/ticket/{ticket_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
def technician_tab(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/technician-tab/ticket/{ticket_id}`: the tab for one ticket."""
    answer = not_implemented("The technician tab")
    return func.HttpResponse(answer.body(), status_code=answer.status, mimetype=PROBLEM_JSON)
