"""The console examples of README.md and docs/: found, run against `make run`'s devhost, rendered.

A runnable example is a ```console block of `$ curl ...` commands against
`http://127.0.0.1:7071`, each followed by what it printed. What it printed is rendered from the
real answer by one renderer (`render`), so the docs test can run the command again and compare, and
`make docs` can write a fresh answer into the doc. Long answers are cut by the renderer, never by
hand: a list past `items=N` (the block's fence options, default 3) ends with
`"... K more cut here"`, text past `lines=N` with `... K more lines cut here`. With `-i` the status
line and the headers in `SHOWN_HEADERS` are printed (the others are cut), then the body.

Values that differ from run to run (generation ids, timestamps, dates, durations) are masked before
comparing: the doc shows the values of the run that wrote it.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
DOC_BASE = "http://127.0.0.1:7071"
MAKE_RUN = ".venv/bin/python -m sandbox.devhost --port 7071"
SHOWN_HEADERS = ("Content-Type", "Location", "Allow", "ETag", "Retry-After")
FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)$")
_VOLATILE = (
    # generation ids (a UTC second and 6 hex digits), ISO datetimes and dates, run ids
    (re.compile(r"\b\d{14}[0-9a-f]{6}\b"), "<generation>"),
    (re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?"), "<time>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    # the day a targets ETag was resolved on ("<generation>.<version>.YYYYMMDD.<links>")
    (re.compile(r"(?<=\.)20\d{6}(?=\.)"), "<day>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<uuid>"),
    # A run or edit id is 12 hex digits: quoted, between an ETag's dots (its version and its
    # links) or after a cause's kind, whatever they are (one in 280 is all decimal digits);
    # elsewhere only with a letter and a digit, so a plain 12-digit number stays itself.
    (re.compile(r'(?<=")[0-9a-f]{12}(?=")'), "<run id>"),
    (re.compile(r'(?<=\.)[0-9a-f]{12}(?=[."])'), "<run id>"),
    # A change's cause in the changes CSV: its kind, then the run's, event's or edit's id.
    (re.compile(r"\b(sync|approval|event|rule) [0-9a-f]{12}\b"), r"\1 <run id>"),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{12}\b"), "<run id>"),
    (re.compile(r'("[a-z_]*(?:_ms|_seconds|seconds|_s)":)-?[0-9.]+'), r"\1<n>"),
    (re.compile(r"(in|ago|after|for) [0-9.]+ ?(s|ms|seconds|minutes|min|h)\b"), r"\1 <n> \2"),
    # the sandboxes' free ports, and the worker's threads (CPUs + 4)
    (re.compile(r"127\.0\.0\.1:\d+"), "127.0.0.1:<port>"),
    (re.compile(r"\d+ threads"), "<n> threads"),
)


@dataclass
class Example:
    """One `$ curl ...` command of a console block and the output the doc shows for it."""

    doc: Path
    line: int  # 1-based line of the command in the doc
    command: str
    shown: str
    options: dict[str, int] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)  # the command's lines as the doc has them


@dataclass
class Block:
    """A ```console block: where its body starts and ends in the doc, and its examples."""

    start: int  # index of the first body line
    end: int  # index of the closing fence
    indent: str
    options: dict[str, int]
    examples: list[Example]


def blocks(doc: Path) -> list[Block]:
    """The console blocks of one doc, in order."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        close = _closing(lines, index + 1, opening["indent"])
        info = opening["info"].split()
        if info[:1] == ["console"]:
            options = _options(info[1:])
            body = [line.removeprefix(opening["indent"]) for line in lines[index + 1 : close]]
            examples = _examples(doc, index + 2, body, options)
            found.append(Block(index + 1, close, opening["indent"], options, examples))
        index = close + 1
    return found


def fenced(doc: Path) -> list[tuple[int, str, str]]:
    """Every fenced block of a doc as (line, info string, body)."""
    lines = doc.read_text(encoding="utf-8").splitlines()
    out: list[tuple[int, str, str]] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        close = _closing(lines, index + 1, opening["indent"])
        out.append((index + 1, opening["info"].strip(), "\n".join(lines[index + 1 : close])))
        index = close + 1
    return out


def _closing(lines: list[str], start: int, indent: str) -> int:
    for index in range(start, len(lines)):
        if lines[index].strip() == "```" and lines[index].startswith(indent):
            return index
    raise ValueError(f"a fence opened before line {start} is never closed")


def _options(words: list[str]) -> dict[str, int]:
    options: dict[str, int] = {}
    for word in words:
        name, _, value = word.partition("=")
        options[name] = int(value)
    return options


def _examples(
    doc: Path, first_line: int, body: list[str], options: dict[str, int]
) -> list[Example]:
    examples: list[Example] = []
    continued = False
    for offset, line in enumerate(body):
        if continued:
            # A command continued with a trailing backslash, as a shell reads it.
            examples[-1].command = examples[-1].command[:-1].rstrip() + " " + line.strip()
            examples[-1].written.append(line)
        elif line.startswith("$ "):
            examples.append(Example(doc, first_line + offset, line[2:], "", options, [line]))
        elif examples:
            examples[-1].shown += line + "\n"
        continued = (
            bool(examples)
            and examples[-1].command.endswith("\\")
            and (continued or line.startswith("$ "))
        )
    for example in examples:
        example.shown = example.shown.rstrip("\n")
    return examples


# -- running ---------------------------------------------------------------------------------------


@dataclass
class Curl:
    """The part of curl the docs use: method, headers, body, `-i`, `-o /dev/null -w`."""

    url: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None
    include: bool = False
    write_out: str | None = None
    discard_body: bool = False


def parse_curl(command: str) -> Curl:
    """A curl command line as the docs write it; anything else is an error naming it."""
    words = shlex.split(command)
    if words[:1] != ["curl"]:
        raise ValueError(f"not a curl command: {command}")
    curl = Curl(url="")
    iterator = iter(words[1:])
    for word in iterator:
        if word in ("-s", "-S", "-sS", "--silent"):
            continue
        if word in ("-i", "-si", "-is", "--include"):
            curl.include = True
        elif word in ("-X", "--request"):
            curl.method = next(iterator)
        elif word in ("-H", "--header"):
            name, _, value = next(iterator).partition(":")
            curl.headers[name.strip()] = value.strip()
        elif word in ("-d", "--data", "--data-binary"):
            curl.data = next(iterator).encode()
            if curl.method == "GET":
                curl.method = "POST"
        elif word == "-o":
            curl.discard_body = next(iterator) == "/dev/null"
        elif word in ("-w", "--write-out"):
            curl.write_out = next(iterator)
        elif word.startswith("-"):
            raise ValueError(f"curl option {word} is not one the docs test knows: {command}")
        else:
            curl.url = word
    if curl.data is not None and "Content-Type" not in curl.headers:
        # What curl sends with -d.
        curl.headers["Content-Type"] = "application/x-www-form-urlencoded"
    return curl


def run(example: Example, base: str, client: httpx.Client, startup: str = "") -> str:
    """Run one example against the devhost at `base` and render what curl would print.

    `$ make run` is answered by what the devhost printed at start (`startup`), as make echoes it.
    """
    if example.command == "make run":
        return f"{MAKE_RUN}\n{startup.rstrip()}".replace(base, DOC_BASE)
    command, _, pipe = example.command.partition(" | ")
    curl = parse_curl(command)
    if not curl.url.startswith(DOC_BASE):
        raise ValueError(f"{example.doc.name}:{example.line}: examples call {DOC_BASE}")
    response = client.request(
        curl.method,
        base + curl.url[len(DOC_BASE) :],
        headers=curl.headers,
        content=curl.data,
    )
    if pipe:
        shown = grep_only(pipe, response.text)
    else:
        shown = render(response, curl, example.options)
    # The devhost runs on a free port; the doc shows the port `make run` uses.
    return shown.replace(base, DOC_BASE)


def grep_only(pipe: str, text: str) -> str:
    """`grep -o 'PATTERN'` (basic regular expressions, `\\|` for or): each match on a line."""
    words = shlex.split(pipe)
    if words[:2] != ["grep", "-o"] or len(words) != 3:
        raise ValueError(f"the docs test pipes only into grep -o 'PATTERN', not: {pipe}")
    pattern = re.compile(words[2].replace("\\|", "|"))
    return "\n".join(m.group(0) for line in text.splitlines() for m in pattern.finditer(line))


def render(response: httpx.Response, curl: Curl, options: dict[str, int]) -> str:
    """What the doc shows for one answer (see the module docstring)."""
    parts: list[str] = []
    if curl.include:
        reason = HTTPStatus(response.status_code).phrase
        parts.append(f"HTTP/1.1 {response.status_code} {reason}")
        for name in SHOWN_HEADERS:
            if name in response.headers:
                parts.append(f"{name}: {response.headers[name]}")
        parts.append("")
    if not curl.discard_body:
        parts.append(_body(response, options))
    if curl.write_out is not None:
        parts.append(curl.write_out.replace("%{http_code}", str(response.status_code)).strip())
    return "\n".join(parts).rstrip("\n")


def _body(response: httpx.Response, options: dict[str, int]) -> str:
    kind = response.headers.get("Content-Type", "")
    if "json" in kind and response.content:
        return pretty(_cut(response.json(), options.get("items", 3)))
    lines = response.text.splitlines()
    keep = options.get("lines", 12)
    if len(lines) > keep:
        lines = [*lines[:keep], f"... {len(lines) - keep} more lines cut here"]
    return "\n".join(lines)


def _cut(value: Any, items: int) -> Any:
    if isinstance(value, list):
        kept = [_cut(v, items) for v in value[:items]]
        if len(value) > items:
            kept.append(f"... {len(value) - items} more cut here")
        return kept
    if isinstance(value, dict):
        return {k: _cut(v, items) for k, v in value.items()}
    return value


def pretty(value: Any) -> str:
    """JSON as the docs show it: a top-level member per line, a top-level list of objects one
    object per line, everything deeper compact."""

    def compact(v: Any) -> str:
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))

    if not isinstance(value, dict) or not value:
        if isinstance(value, list) and value:
            return "[" + ",\n ".join(compact(v) for v in value) + "]"
        return compact(value)
    lines = []
    for name, member in value.items():
        if isinstance(member, list) and member and isinstance(member[0], dict):
            inner = ",\n   ".join(compact(v) for v in member)
            lines.append(f"{compact(name)}:[{inner}]")
        else:
            lines.append(f"{compact(name)}:{compact(member)}")
    return "{" + ",\n ".join(lines) + "}"


def masked(text: str) -> str:
    """`text` with the values that differ between runs replaced by placeholders."""
    for pattern, placeholder in _VOLATILE:
        text = pattern.sub(placeholder, text)
    return text


def rewrite(doc: Path, outputs: dict[int, str]) -> bool:
    """Write fresh outputs (by command line) into a doc's console blocks; True if it changed."""
    original = doc.read_text(encoding="utf-8")
    lines = original.splitlines()
    for block in reversed(blocks(doc)):
        body: list[str] = []
        for example in block.examples:
            if body:
                body.append("")
            body.extend(example.written)
            body.extend(outputs.get(example.line, example.shown).splitlines())
        lines[block.start : block.end] = [(block.indent + line) if line else "" for line in body]
    text = "\n".join(lines) + ("\n" if original.endswith("\n") else "")
    if text != original:
        doc.write_text(text, encoding="utf-8")
        return True
    return False


def changed_answers(doc: Path, flags: Sequence[str] = ()) -> list[tuple[Example, str]]:
    """Run a doc's examples in order on a devhost of its own (started with `flags`): each example
    whose answer now differs from what the doc shows (beyond run-to-run values), with that answer."""
    from sandbox.processes import devhost_process

    examples = [example for block in blocks(doc) for example in block.examples]
    if not examples:
        return []
    changed = []
    with devhost_process(*flags) as devhost, httpx.Client(timeout=60) as client:
        for example in examples:
            answer = run(example, devhost.url, client, devhost.output)
            if masked(answer) != masked(example.shown):
                changed.append((example, answer))
    return changed
