"""The docs' reference tables are complete: every setting the code reads, every HTTP function's
key, and what the Bicep writes for each setting; make's error lines quoted in the docs name the
Makefile line they would."""

from __future__ import annotations

import re

import pytest

from shared.settings import Settings
from tests.docs.examples import ROOT
from tests.registry import registered

README = (ROOT / "README.md").read_text(encoding="utf-8")
OPERATIONS = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
SETTINGS = sorted(name.upper() for name in Settings.model_fields)


def section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of the same or a higher level."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        hashes, _, title = line.partition(" ")
        if set(hashes) == {"#"} and title == heading:
            level = len(hashes)
            body = []
            for following in lines[index + 1 :]:
                marks = following.partition(" ")[0]
                if marks and set(marks) == {"#"} and len(marks) <= level:
                    break
                body.append(following)
            return "\n".join(body)
    raise AssertionError(f"no section {heading!r}")


def table_names(text: str) -> set[str]:
    """Every `CODE` named in the first column of the tables in `text`."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([^`]+)`", line.split(" | ")[0]))
    return names


@pytest.mark.parametrize("heading", ["Settings", "Settings in Azure"])
def test_readme_settings_tables_name_every_setting(heading):
    named = table_names(section(README, heading))
    assert not set(SETTINGS) - named, f"{heading} lacks {sorted(set(SETTINGS) - named)}"


def http_functions() -> list[tuple[str, str, str]]:
    """(name, route, auth level) of every HTTP function."""
    found = []
    for name, function in registered().items():
        for binding in function.get_bindings():
            if binding.type == "httpTrigger":
                found.append((name, binding.route, str(binding.auth_level)))
    return found


def test_the_keys_table_names_every_http_function():
    rows = [line for line in section(OPERATIONS, "Keys").splitlines() if line.startswith("| `")]
    assert len(http_functions()) > 10
    for name, route, auth in http_functions():
        if auth.endswith("ADMIN"):
            path = "/api/" + route.split("/{")[0]
            row = next((r for r in rows if f"{path}`" in r), "")
            assert "master" in row, f"{name}: the row of {path} must say the master key opens it"
        else:
            assert any(f"`{name}`" in r for r in rows), f"the keys table lacks {name}"


def test_section_finds_the_text_under_a_heading():
    text = "# A\nx\n## B\ny\n## C\nz\n"
    assert section(text, "B").strip().endswith("y")
    assert "z" not in section(text, "B")


def test_makes_error_lines_in_the_docs_name_the_recipe_line_of_their_target():
    # make names the Makefile line of the recipe command that failed; an edit above it moves it.
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").splitlines()
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    quoted = [
        (doc.name, int(number), target)
        for doc in docs
        for number, target in re.findall(
            r"\[Makefile:(\d+): ([\w-]+)\]", doc.read_text(encoding="utf-8")
        )
    ]
    assert quoted, "no make error line in the docs: this test proves nothing"
    for name, number, target in quoted:
        above = makefile[: number - 1]
        rule = next(line for line in reversed(above) if not line.startswith("\t"))
        assert makefile[number - 1].startswith("\t") and rule.startswith(f"{target}:"), (
            f"{name}: Makefile line {number} is not a recipe line of {target}"
        )
