"""The docs run: every console example in README.md and docs/ answers today what the doc shows.

Each doc's examples run in order on a devhost of their own (`make run`'s demo), so an example that
edits a rule is seen by the ones after it. A changed answer fails here with the difference; a real
change of the API is written into the docs by `make docs`.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import httpx
import pytest

from tests.conftest import devhost_prefix
from tests.docs.examples import (
    DOC_BASE,
    DOCS,
    Curl,
    blocks,
    changed_answers,
    fenced,
    grep_only,
    masked,
    parse_curl,
    pretty,
    render,
)

pytestmark = pytest.mark.integration
RUNNABLE = [doc for doc in DOCS if any(block.examples for block in blocks(doc))]
# A curl or PowerShell call that is not a console example must say where it runs instead.
ELSEWHERE = re.compile(r"^\s*#.*(Azure only|not run here)", re.MULTILINE)
CALLS = re.compile(r"\bcurl\b|Invoke-RestMethod|Invoke-WebRequest")


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda d: d.name)
def test_every_console_example_answers_what_the_doc_shows(doc: Path, devhost_flags):
    differences = []
    for example, answer in changed_answers(doc, devhost_flags(devhost_prefix())):
        shown, got = masked(example.shown), masked(answer)
        diff = "\n".join(
            difflib.unified_diff(shown.splitlines(), got.splitlines(), "doc", "now", lineterm="")
        )
        differences.append(f"{doc.name}:{example.line}: $ {example.command}\n{diff}")
    assert not differences, (
        "the docs show answers the app no longer gives (`make docs` rewrites them from a real "
        "run once the change is meant):\n\n" + "\n\n".join(differences)
    )


def test_the_docs_have_console_examples_to_run():
    # The README's own examples and the immybot recipe: a docs test that finds none proves nothing.
    names = {doc.name for doc in RUNNABLE}
    assert "README.md" in names, names


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_every_call_in_the_docs_is_run_or_says_where_it_runs(doc: Path):
    unmarked = []
    for line, info, body in fenced(doc):
        if info.split()[:1] == ["console"] or not CALLS.search(body):
            continue
        if not ELSEWHERE.search(body):
            unmarked.append(f"{doc.name}:{line} ({info or 'plain'})")
    assert not unmarked, (
        "calls outside a console block must say where they run, a comment line with "
        f"'Azure only' or 'not run here': {unmarked}"
    )


@pytest.mark.parametrize("doc", RUNNABLE, ids=lambda d: d.name)
def test_console_examples_call_the_devhost_with_options_the_runner_knows(doc: Path):
    for block in blocks(doc):
        for example in block.examples:
            if example.command == "make run":
                continue
            command = example.command.partition(" | ")[0]
            curl = parse_curl(command)  # raises on an option the runner does not know
            assert curl.url.startswith(DOC_BASE), f"{doc.name}:{example.line}"


# -- the renderer and the comparison can fail ------------------------------------------------------


def answer(status: int, body: object, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def test_a_changed_field_is_a_difference_and_a_new_generation_is_not():
    curl = Curl(url=f"{DOC_BASE}/api/x")
    before = render(answer(200, {"generation": "20261205014406eac155", "targets": 3}), curl, {})
    later = render(answer(200, {"generation": "20261206101010abcdef", "targets": 3}), curl, {})
    renamed = render(answer(200, {"generation": "20261206101010abcdef", "target": 3}), curl, {})
    assert masked(before) == masked(later)
    assert masked(before) != masked(renamed)


def test_a_run_id_of_decimal_digits_only_is_masked_like_any_other():
    # uuid4().hex[:12] is all decimal digits about once in 280 runs: the docs test failed then.
    curl = Curl(url=f"{DOC_BASE}/api/x")
    shown = render(answer(200, {"run_id": "5d1f0c2e9a7b", "clients": 120}), curl, {})
    digits = render(answer(200, {"run_id": "064317786959", "clients": 120}), curl, {})
    assert masked(shown) == masked(digits)
    assert masked(render(answer(200, {"count": 123456789012}), curl, {})) != masked(
        render(answer(200, {"count": 123456789013}), curl, {})
    )


def test_a_cause_of_decimal_digits_only_in_the_changes_csv_is_masked():
    # The CSV names a change's cause unquoted ("sync 129566984272"): the docs test failed then.
    curl = Curl(url=f"{DOC_BASE}/api/changes?format=csv")
    header = "at,software,client_id,change,cause\n"

    def shown(cause: str) -> str:
        row = f"2026-12-07T07:40:01Z,Huntress,1,became,{cause}\n"
        return masked(render(httpx.Response(200, text=header + row), curl, {}))

    assert shown("sync 5d1f0c2e9a7b") == shown("sync 129566984272")
    assert shown("rule 3fa8b2c91d0e") == shown("rule 930009005289")
    assert shown("sync 5d1f0c2e9a7b") != shown("rule 5d1f0c2e9a7b")


def test_a_targets_etag_of_another_day_is_masked_and_of_another_version_is_not():
    # The day the targets were resolved on is in the ETag: the docs test failed after midnight.
    curl = Curl(url=f"{DOC_BASE}/api/x", include=True)

    def shown(etag: str) -> str:
        return masked(render(answer(200, {}, ETag=etag), curl, {}))

    today = shown('"202612061819458dcc66.a96ef9c4dedb.20261206.f7a1497487ba.computers"')
    assert today == shown('"202612070001028dcc66.a96ef9c4dedb.20261207.f7a1497487ba.computers"')
    assert today != shown('"202612070001028dcc66.a96ef9c4dedb.20261207.f7a1497487ba"')
    # Its version and links are 12 hex digits, now and then all decimal ones (about 1 in 280).
    assert today == shown('"202612070001028dcc66.930009005289.20261207.064317786959.computers"')


def test_long_lists_are_cut_by_the_renderer_and_say_how_much():
    curl = Curl(url=f"{DOC_BASE}/api/x")
    shown = render(answer(200, {"targets": [{"id": i} for i in range(5)]}), curl, {"items": 2})
    assert shown == '{"targets":[{"id":0},\n   {"id":1},\n   "... 3 more cut here"]}'


def test_include_shows_the_status_line_and_the_headers_that_matter():
    curl = Curl(url=f"{DOC_BASE}/api/x", include=True)
    response = httpx.Response(
        404,
        content=b'{"status":404}',
        headers={"Content-Type": "application/problem+json", "Date": "today"},
    )
    assert render(response, curl, {}) == (
        'HTTP/1.1 404 Not Found\nContent-Type: application/problem+json\n\n{"status":404}'
    )


def test_an_unknown_curl_option_is_refused_by_name():
    with pytest.raises(ValueError, match="--compressed"):
        parse_curl(f"curl --compressed {DOC_BASE}/api/catalog")


def test_grep_only_prints_each_match_and_refuses_other_pipes():
    html = '<p>a</p><a class="x">one</a>\n<a class="y">two</a>'
    assert grep_only("grep -o '<a class=\"x\">[^<]*\\|two'", html) == '<a class="x">one\ntwo'
    with pytest.raises(ValueError, match="jq"):
        grep_only("jq .ok", html)


def test_pretty_puts_each_top_level_member_on_a_line():
    assert pretty({"a": 1, "b": [1, 2]}) == '{"a":1,\n "b":[1,2]}'
