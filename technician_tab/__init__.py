"""HTTP blueprint of the page HaloPSA shows in a ticket's Custom Tab iframe (`.../ticket/$FAULTID`)."""

import azure.functions as func

from shared.api.calls import Call
from shared.api.tab_reply import tab_answer

bp = func.Blueprint()


@bp.function_name("technician_tab")
@bp.route(
    route="technician-tab/ticket/{ticket_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
async def technician_tab(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/technician-tab/ticket/{ticket_id}`: the tab for one ticket, as HTML (an error
    as a problem unless the caller accepts HTML, as a browser in HaloPSA does)."""
    reply = await tab_answer(
        Call("technician_tab", req.method, req.url, req.params),
        req.route_params.get("ticket_id", ""),
        principal=req.headers.get("X-MS-CLIENT-PRINCIPAL"),
        accept=req.headers.get("Accept"),
    )
    return func.HttpResponse(**reply.as_kwargs(), charset="utf-8")
