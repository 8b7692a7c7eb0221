"""HTTP blueprint of the page HaloPSA shows in a ticket's Custom Tab iframe (`.../ticket/$FAULTID`)."""

import time

import azure.functions as func

from shared.api.replies import log_api_call
from shared.tab.page import tab_page

bp = func.Blueprint()


@bp.function_name("technician_tab")
@bp.route(
    route="technician-tab/ticket/{ticket_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
async def technician_tab(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/technician-tab/ticket/{ticket_id}`: the tab for one ticket, as HTML."""
    started = time.perf_counter()
    page = await tab_page(
        req.route_params.get("ticket_id", ""),
        principal=req.headers.get("X-MS-CLIENT-PRINCIPAL"),
    )
    log_api_call("technician_tab", req.method, page.status, started, req.params)
    return func.HttpResponse(
        page.html,
        status_code=page.status,
        headers=page.headers,
        mimetype="text/html",
        charset="utf-8",
    )
