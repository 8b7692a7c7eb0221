"""CSV answers (RFC 4180) that are safe to open in a spreadsheet, and their attachment headers."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence

from shared.api.replies import Reply


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A spreadsheet would run a cell starting like a formula: neutralise customer-controlled text.
    return (
        "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _number(text) else text
    )


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, object]]) -> str:
    """A header line of `columns`, then each row's values in that order."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row[c]) for c in columns])
    return out.getvalue()


def csv_reply(text: str, name: str) -> Reply:
    """`text` as a CSV attachment called `<name>.csv` (made ASCII-safe)."""
    # A header value must be ASCII: "Ü".isalnum() is true, and the host refuses it.
    safe = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in name)
    return Reply(
        200,
        text.encode(),
        "text/csv",
        {"Content-Disposition": f'attachment; filename="{safe}.csv"'},
    )
