"""The technician tab's answer: its page; for an error, a problem (RFC 9457) unless the caller
asks for HTML.

A browser framing the tab in HaloPSA sends `Accept: text/html,...` and gets the styled error
page, which a technician can read; a script, curl or a monitor gets `application/problem+json`,
as from every other route, so a 403 (or any error) our code answers is machine-readable. Both
say the same: the page's message is the problem's detail, its kind the problem's type.
"""

from __future__ import annotations

from shared.api.calls import Call, respond_async
from shared.api.problems import Problem, problem
from shared.api.replies import Reply, problem_reply
from shared.tab.page import refusal_page, tab_page
from shared.tab.render import Page

HTML = "text/html"
# An error's representation depends on Accept: caches and proxies must know.
VARY = {"Vary": "Accept"}
# What every tab answer keeps, whichever representation it takes.
PRIVATE = {"Cache-Control": "private, no-store", "X-Content-Type-Options": "nosniff"}


def wants_html(accept: str | None) -> bool:
    """Whether an Accept header names text/html (with a quality above 0). `*/*` alone does not:
    only a caller that says it reads HTML gets a page instead of a problem."""
    for media_range in (accept or "").split(","):
        media, *options = (part.strip().lower() for part in media_range.split(";"))
        if media != HTML:
            continue
        quality = next((o.split("=", 1)[1] for o in options if o.startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


def page_reply(page: Page, accept: str | None) -> Reply:
    """The page as HTML, or, for an error page a caller did not ask HTML of, its problem."""
    if page.error is None:
        return Reply(page.status, page.html.encode(), HTML, page.headers)
    if wants_html(accept):
        return Reply(page.status, page.html.encode(), HTML, {**page.headers, **VARY})
    answer = problem(page.status, page.error.slug, page.error.message, heading=page.error.title)
    return problem_reply(answer, {**PRIVATE, **VARY})


def query_refused(refusal: Problem, accept: str | None) -> Reply:
    """A bad query's 400, as a problem or, for a browser, a page saying the same."""
    if not wants_html(accept):
        return problem_reply(refusal, {**PRIVATE, **VARY})
    slug = refusal.type.rsplit("/", 1)[-1]
    page = refusal_page(refusal.status, slug, "Bad query", refusal.detail or refusal.title)
    return page_reply(page, accept)


async def tab_answer(
    call: Call, ticket_id: str, *, principal: str | None, accept: str | None
) -> Reply:
    """`GET /api/technician-tab/ticket/{ticket_id}`: the tab, or its error in the form asked."""

    async def answer() -> Reply:
        return page_reply(await tab_page(ticket_id, principal=principal), accept)

    return await respond_async(call, answer, lambda refusal: query_refused(refusal, accept))
