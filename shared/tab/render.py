"""Rendering the technician tab: jinja2 with autoescape, and the headers every page goes out with."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

TEMPLATES = Path(__file__).resolve().parent / "templates"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        # The templates ship with the code: no stat of each file on every render.
        auto_reload=False,
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["when"] = _when
    env.filters["bdi"] = bdi
    env.filters["http_url"] = http_url
    return env


def bdi(value: object) -> Markup:
    """`value` escaped and isolated in `<bdi>`, so a U+202E or another bidi control in customer
    text reorders only itself, never the page around it."""
    return Markup("<bdi>{}</bdi>").format(value)


def http_url(value: str | None) -> str | None:
    """`value` if it is an http(s) URL, else None: no javascript: or data: link is ever rendered."""
    if not value:
        return None
    parts = urlsplit(value.strip())
    return value.strip() if parts.scheme in ("http", "https") and parts.netloc else None


def _when(value: datetime | date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class PageError:
    """What an error page says, for a caller that wants it as data: a problem type's slug, the
    page's heading and its message."""

    slug: str
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered page and the headers it must go out with; `error` when it is an error page."""

    status: int
    html: str
    headers: dict[str, str]
    error: PageError | None = None


def security_headers(frame_origins: Sequence[str], nonce: str) -> dict[str, str]:
    """CSP that lets only HaloPSA frame the page and only our inline style run."""
    policy = "; ".join(
        [
            "default-src 'none'",
            f"style-src 'nonce-{nonce}'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors " + " ".join(frame_origins),
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "private, no-store",
        "X-Content-Type-Options": "nosniff",
    }


def render(template: str, frame_origins: Sequence[str], status: int = 200, **context: Any) -> Page:
    """Render a template with a fresh CSP nonce."""
    nonce = secrets.token_urlsafe(16)
    html = _environment().get_template(template).render(nonce=nonce, **context)
    return Page(status, html, security_headers(frame_origins, nonce))


def error_page(
    status: int, slug: str, title: str, message: str, frame_origins: Sequence[str]
) -> Page:
    """A small styled error page (400, 403, 404, 503) with no internals in it."""
    page = render("error.html", frame_origins, status, title=title, message=message, code=status)
    return Page(page.status, page.html, page.headers, PageError(slug, title, message))
