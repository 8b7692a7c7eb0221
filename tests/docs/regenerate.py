"""`make docs`: run every console example of README.md and docs/ against a fresh devhost per doc
and write what it really answered into the doc.

    python -m tests.docs.regenerate [DOC ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.docs.examples import DOCS, changed_answers, rewrite


def regenerate(doc: Path) -> bool:
    """Write the answers that changed into one doc; True if the doc changed."""
    return rewrite(doc, {example.line: answer for example, answer in changed_answers(doc)})


def main(argv: list[str]) -> int:
    """Regenerate the named docs (default: all) and say which changed."""
    docs = [Path(a).resolve() for a in argv] or list(DOCS)
    for doc in docs:
        changed = regenerate(doc)
        print(f"{doc.name}: {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
