"""Model output to safe HTML: markdown-it-py, Pygments for code, nh3 to sanitize.

Model output is untrusted. Raw HTML in it is escaped by markdown-it (``html=False``), links are
limited to safe schemes, and nh3 removes anything that still is not on the allow-list.
"""

from __future__ import annotations

import html
from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

_FORMATTER = HtmlFormatter(nowrap=True, classprefix="hl-")

_TAGS = {
    "p", "br", "hr", "em", "strong", "del", "s", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "table", "thead", "tbody", "tr", "th", "td", "span",
    "div", "img", "sup", "sub",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "span": {"class"},
    "code": {"class"},
    "pre": {"class"},
    "div": {"class"},
    "th": {"style"},
    "td": {"style"},
    "ol": {"start"},
}


@lru_cache(maxsize=256)
def _lexer(name: str):
    """Pygments' lexer for a fence's language, or None (finding one by name is slow)."""
    try:
        return get_lexer_by_name(name)
    except ClassNotFound:
        return None


def _highlight(code: str, lang: str, attrs: str) -> str:
    """Pygments-highlighted HTML for a fenced block, or '' to let markdown-it escape it."""
    lexer = _lexer(lang.strip().split()[0].lower()[:40]) if lang.strip() else None
    if lexer is None:
        return ""
    return highlight(code, lexer, _FORMATTER)


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    return md


def render_markdown(text: str) -> Markup:
    """Sanitized HTML for ``text`` (markdown), safe to put in any page."""
    raw = _parser().render(text or "")
    clean = nh3.clean(
        raw,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
    return Markup(clean)  # noqa: S704 - sanitized by nh3 just above


def message_html(message) -> Markup:
    """A message's HTML: the copy rendered when it was finished, else rendered now."""
    stored = getattr(message, "html", None)
    if stored is not None:
        return Markup(stored)  # noqa: S704 - sanitized by render_markdown when it was stored
    return render_markdown(message.content)


def message_info(message) -> Markup:
    """The details under an answer: provider, model, the parameters it used, its timings and
    status.

    Built in Python rather than as a template macro: a page shows it for every answer, and for a
    conversation of 1,000 messages the macro was a quarter of the page's server time.
    """
    params = message.params or {}
    rows = [(key, value) for key, value in params.items() if key != "system_prompt"]
    if params.get("system_prompt"):
        rows.append(("system prompt", params["system_prompt"]))
    first = message.seconds("started_at", "first_token_at")
    total = message.seconds("started_at", "finished_at")
    if first is not None:
        rows.append(("first token", f"{first:.2f} s"))
    if total is not None:
        rows.append(("total", f"{total:.2f} s, {message.token_count} chunks"))
    rows.append(("status", message.status))
    escape = html.escape  # plain strings: a Markup object per value costs more than the rest
    items = "".join(f"<dt>{escape(str(key))}</dt><dd>{escape(str(value))}</dd>"
                    for key, value in rows)
    return Markup(  # noqa: S704 - every value is escaped above
        f'<details class="msg-info">\n  <summary>{escape(message.provider or "?")} · '
        f'{escape(message.model or "?")}</summary>\n  <dl>{items}</dl>\n</details>')


def escape_stream_text(text: str) -> str:
    """Escape streamed text for insertion as HTML (the final render replaces it)."""
    return html.escape(text, quote=False)


def pygments_css() -> str:
    """The stylesheet for highlighted code, light by default and dark when the system is."""
    light = HtmlFormatter(style="friendly", classprefix="hl-").get_style_defs(".md pre")
    dark = HtmlFormatter(style="monokai", classprefix="hl-").get_style_defs(".md pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
