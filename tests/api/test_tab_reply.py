"""The tab's errors: a problem for a caller that does not read HTML, the page for one that does."""

from __future__ import annotations

import json

import pytest

from shared.api.problems import PROBLEM_BASE, PROBLEM_JSON
from shared.api.tab_reply import page_reply, wants_html
from shared.tab.render import error_page, render

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("application/problem+json, text/html;q=0", False),
        ("text/html;q=bad", False),
        (BROWSER, True),
        ("TEXT/HTML", True),
        ("application/json;q=0.9, text/html;q=0.1", True),
    ],
)
def test_only_a_caller_that_names_html_reads_html(accept, html):
    assert wants_html(accept) is html


def test_an_error_page_is_its_problem_for_a_caller_that_does_not_read_html():
    page = error_page(
        403, "not-in-group", "Not allowed", "Not in the group.", ["https://h.example"]
    )
    reply = page_reply(page, "application/json")
    assert (reply.status, reply.mimetype) == (403, PROBLEM_JSON)
    assert json.loads(reply.body) == {
        "type": PROBLEM_BASE + "not-in-group",
        "title": "Forbidden",
        "status": 403,
        "detail": "Not in the group.",
        "heading": "Not allowed",
    }
    assert reply.headers["Vary"] == "Accept"
    html = page_reply(page, BROWSER)
    assert (html.status, html.mimetype) == (403, "text/html")
    assert html.headers["Vary"] == "Accept" and "Content-Security-Policy" in html.headers


def test_the_tab_itself_is_html_whatever_is_accepted():
    page = render("error.html", ["https://h.example"], title="t", message="m", code=200)
    reply = page_reply(page, "application/json")
    assert (reply.status, reply.mimetype) == (200, "text/html")
    assert "Vary" not in reply.headers
