"""`make docs`: run every console example of README.md and docs/ against a fresh devhost per doc
and write what it really answered into the doc.

    python -m tests.docs.regenerate [DOC ...]
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from sandbox.processes import devhost_process
from tests.docs.examples import DOCS, blocks, masked, rewrite, run


def regenerate(doc: Path) -> bool:
    """Run one doc's examples in order on a devhost of its own; True if the doc changed."""
    examples = [example for block in blocks(doc) for example in block.examples]
    if not examples:
        return False
    with devhost_process() as (url, startup), httpx.Client(timeout=60) as client:
        answers = {example.line: run(example, url, client, startup) for example in examples}
    # Only answers that really changed: a new generation id or time alone is not a change.
    outputs = {
        example.line: answers[example.line]
        for example in examples
        if masked(answers[example.line]) != masked(example.shown)
    }
    return rewrite(doc, outputs)


def main(argv: list[str]) -> int:
    """Regenerate the named docs (default: all) and say which changed."""
    docs = [Path(a).resolve() for a in argv] or list(DOCS)
    for doc in docs:
        changed = regenerate(doc)
        print(f"{doc.name}: {'rewritten' if changed else 'unchanged'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
