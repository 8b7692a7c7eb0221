"""HTTP blueprint of the page HaloPSA shows in a ticket's Custom Tab iframe (`.../ticket/$FAULTID`)."""

import azure.functions as func

from shared.api.calls import Call, respond_async
from shared.api.replies import Reply
from shared.tab.page import tab_page

bp = func.Blueprint()


@bp.function_name("technician_tab")
@bp.route(
    route="technician-tab/ticket/{ticket_id}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION
)
async def technician_tab(req: func.HttpRequest) -> func.HttpResponse:
    """`GET /api/technician-tab/ticket/{ticket_id}`: the tab for one ticket, as HTML."""

    async def answer() -> Reply:
        page = await tab_page(
            req.route_params.get("ticket_id", ""),
            principal=req.headers.get("X-MS-CLIENT-PRINCIPAL"),
        )
        return Reply(page.status, page.html.encode(), "text/html", page.headers)

    reply = await respond_async(Call("technician_tab", req.method, req.url, req.params), answer)
    return func.HttpResponse(**reply.as_kwargs(), charset="utf-8")
