"""Model output to safe HTML: markdown-it-py, Pygments for code, nh3 to sanitize.

Model output is untrusted. Raw HTML in it is escaped by markdown-it (``html=False``), links are
limited to safe schemes, and nh3 removes anything that still is not on the allow-list. Images
become links: model output never makes the browser fetch anything (the CSP would block it and
show a broken image anyway).

``StreamingMarkdown`` renders an answer while it streams: each finished top-level block as the
same sanitized HTML the whole answer renders to, the open block as text.
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
    "div", "sup", "sub",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
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


def _link_open(self, tokens, idx, options, env):
    env["_links"] = env.get("_links", 0) + 1
    return self.renderToken(tokens, idx, options, env)


def _link_close(self, tokens, idx, options, env):
    env["_links"] = env.get("_links", 1) - 1
    return self.renderToken(tokens, idx, options, env)


def _image(self, tokens, idx, options, env):
    """An image as a link to it (its alt text, else its address, as the link's text); inside a
    link, only that text (a link cannot hold another)."""
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    label = html.escape(self.renderInlineAsText(token.children or [], options, env) or src)
    if env.get("_links") or not src:
        return label
    title = token.attrGet("title")
    title = f' title="{html.escape(str(title))}"' if title else ""
    return f'<a href="{html.escape(src)}"{title}>{label}</a>'


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "highlight": _highlight})
    md.enable(["table", "strikethrough"])
    md.add_render_rule("image", _image)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("link_close", _link_close)
    return md


def render_markdown(text: str) -> Markup:
    """Sanitized HTML for ``text`` (markdown), safe to put in any page."""
    return Markup(_sanitize(_parser().render(text or "")))  # noqa: S704 - sanitized


def _sanitize(raw: str) -> str:
    """``raw`` (markdown-it's HTML) through nh3's allow-list."""
    return nh3.clean(
        raw,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )


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
    stats = answer_stats(message)
    rows.extend(stats)
    rows.append(("status", message.status))
    if getattr(message, "finish_reason", None) == "length":
        rows.append(("ended", "cut at the length limit"))
    skipped = getattr(message, "history_skipped", 0)
    if skipped:
        rows.append(("turns left out", f"{skipped} earlier (oldest first), to fit the "
                                       "model's context window and the history limits"))
    escape = html.escape  # plain strings: a Markup object per value costs more than the rest
    items = "".join(f"<dt>{escape(str(key))}</dt><dd>{escape(str(value))}</dd>"
                    for key, value in rows)
    units = {"tokens": "tokens", "tokens per second": "tokens/s"}
    brief = "".join(f" · {escape(value)} {units[key]}" for key, value in stats if key in units)
    return Markup(  # noqa: S704 - every value is escaped above
        f'<details class="msg-info">\n  <summary>{escape(message.provider or "?")} · '
        f'{escape(message.model or "?")}{brief}</summary>\n  <dl>{items}</dl>\n</details>')


def answer_stats(message) -> list[tuple[str, str]]:
    """An answer's figures as (label, value): its tokens (chunks from the provider, about one
    token each), time to first token, tokens per second while it was written, and in all."""
    rows = []
    tokens = message.token_count or 0
    first = message.seconds("started_at", "first_token_at")
    total = message.seconds("started_at", "finished_at")
    writing = message.seconds("first_token_at", "finished_at")
    if tokens:
        rows.append(("tokens", f"{tokens:,}"))
    if first is not None:
        rows.append(("time to first token", f"{first:.2f} s"))
    if tokens > 1 and writing:
        # The first token only starts the clock: the rate is of those after it.
        rows.append(("tokens per second", f"{(tokens - 1) / writing:.1f}"))
    if total is not None:
        rows.append(("total time", f"{total:.2f} s"))
    return rows


def escape_stream_text(text: str) -> str:
    """Escape streamed text for insertion as HTML (the final render replaces it)."""
    return html.escape(text, quote=False)


def streaming_parts(text: str) -> tuple[Markup, str]:
    """An answer still being written, as a page shows it: the sanitized HTML of its finished
    blocks and the text of its open block (what its stream would have built)."""
    blocks = StreamingMarkdown()
    done, _ = blocks.feed(text)
    return Markup(done), blocks.open_text  # noqa: S704 - sanitized by feed


def pygments_css() -> str:
    """The stylesheet for highlighted code, light by default and dark when the system is."""
    light = HtmlFormatter(style="friendly", classprefix="hl-").get_style_defs(".md pre")
    dark = HtmlFormatter(style="monokai", classprefix="hl-").get_style_defs(".md pre")
    return f"{light}\n@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _top_blocks(tokens) -> list[tuple[int, int]]:
    """The ``(first, last + 1)`` token indexes of each top-level block."""
    blocks, start = [], None
    for i, token in enumerate(tokens):
        if token.level != 0:
            continue
        if token.nesting == 1:
            start = i
        elif token.nesting == -1 and start is not None:
            blocks.append((start, i + 1))
            start = None
        elif token.nesting == 0:
            blocks.append((i, i + 1))
    return blocks


def _fence_closed(token, lines: list[str]) -> bool:
    """Whether a fence token's closing marker is in ``lines`` (and that line is complete)."""
    if token.type != "fence" or not token.map or not token.markup:
        return False
    first, end = token.map
    if end - 1 <= first or end > len(lines) or not lines[end - 1].endswith("\n"):
        return False
    closing = lines[end - 1]
    stripped = closing.lstrip(" ")
    return (len(closing) - len(stripped) <= 3 and stripped.rstrip() != ""
            and set(stripped.rstrip()) == {token.markup[0]}
            and len(stripped.rstrip()) >= len(token.markup))


class StreamingMarkdown:
    """An answer rendered while it streams: ``feed`` each piece of text as it comes.

    A top-level block (paragraph, list, code fence, table, quote, heading) is finished once the
    next one has begun, or, for a code fence, once its closing marker is there; finished blocks
    never change however the text goes on, so each is sent once as its sanitized HTML. The rest
    (the open block) is shown as escaped text until it finishes. Only the open part is parsed
    again, and only when a new line came, so the cost per event stays small however long the
    answer gets. The blocks' HTML joined with ``finish()`` is ``render_markdown`` of the whole
    text (one exception: a reference-style link whose definition comes after a finished block
    that uses it; the final HTML, sent at the end, is right). Which blocks are finished at a
    moment depends a little on how the text came in pieces: a stream that resumes a page's
    answer starts by sending its state whole (``answer_stream``).
    """

    def __init__(self) -> None:
        self.text = ""
        #: Where the open part starts in ``text``.
        self.offset = 0
        self._env: dict = {}

    @property
    def open_text(self) -> str:
        """The text of the open block (not yet rendered)."""
        return self.text[self.offset:]

    def feed(self, chunk: str) -> tuple[str, bool]:
        """Add ``chunk``; returns the sanitized HTML of the blocks it finished ('' if none)
        and whether the open text was cut (then it is ``open_text``; else it grew by
        ``chunk``)."""
        self.text += chunk
        if "\n" not in chunk:
            return "", False  # a block only ends at a new line
        region = self.text[self.offset:]
        parser = _parser()
        tokens = parser.parse(region, self._env)
        blocks = _top_blocks(tokens)
        if not blocks:
            return "", False
        lines = region.splitlines(keepends=True)
        done = len(blocks) - 1
        last = tokens[blocks[-1][0]]
        if _fence_closed(last, lines):
            done, cut = len(blocks), last.map[1]
        else:
            cut = last.map[0] if last.map else len(lines)
        if done == 0:
            return "", False
        raw = parser.renderer.render(tokens[:blocks[done - 1][1]], parser.options, self._env)
        self.offset += sum(len(line) for line in lines[:cut])
        return _sanitize(raw), True

    def finish(self) -> str:
        """The sanitized HTML of what is still open (at the answer's end)."""
        parser = _parser()
        tokens = parser.parse(self.open_text, self._env)
        self.offset = len(self.text)
        return _sanitize(parser.renderer.render(tokens, parser.options, self._env))
