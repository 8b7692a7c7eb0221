"""README.md and docs/ stand alone in a user's clone: every relative link and path they name is in
the repository, none points outside it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.examples import DOCS, ROOT

LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|\bissue \d+")


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_relative_links_resolve_inside_the_repository(doc: Path):
    broken = []
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        path = (doc.parent / target.split("#")[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert not broken, f"{doc.name} links to what a clone does not have: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: d.name)
def test_no_doc_points_at_the_design_notes_or_issues_outside_the_clone(doc: Path):
    found = OUTSIDE.findall(doc.read_text(encoding="utf-8"))
    assert not found, f"{doc.name} names what a user's clone does not have: {found}"


def test_the_link_check_catches_a_missing_file(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("see [there](nowhere.md)")
    assert LINK.findall(doc.read_text()) == ["nowhere.md"]
    assert not (doc.parent / "nowhere.md").exists()
