"""Full-text search over a person's conversations, with no extra service.

SQLite uses the FTS5 table the migrations keep (``messages_fts``); PostgreSQL its built-in text
search with the 'simple' configuration (no stemming, so it works the same for every language).
Titles are matched too, with ``LIKE``. Snippets are escaped, with the matches wrapped in
``<mark>``. Every version of every message is searched, not only the versions shown: a hit
names its message, and its link shows the version that holds it (``/c/<id>?show=<message>``).

Unlike the package's other modules, this one runs its statements itself (``search``) and
returns ``Hit`` objects, not statements: its SQL is raw text, written once per database
because FTS5's ``MATCH``/``snippet`` and PostgreSQL's ``ts_headline`` have no common
SQLAlchemy form, and the rows of the two are merged with the title matches in Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from markupsafe import Markup, escape
from sqlalchemy import text

from ..extensions import db

#: Private-use characters that mark matches in snippets before the text is escaped.
_OPEN, _CLOSE = "\ue000", "\ue001"
LIMIT = 50


@dataclass
class Hit:
    """One conversation that matches, with a snippet of a matching message."""

    conversation_id: int
    title: str
    snippet: Markup
    #: The title, escaped, with the searched words marked.
    title_html: Markup = Markup("")
    #: The message the snippet is from (None for a title alone): in any version, shown or not.
    message_id: int | None = None


def _highlight(snippet: str) -> Markup:
    escaped = str(escape(snippet))
    return Markup(escaped.replace(_OPEN, "<mark>").replace(_CLOSE, "</mark>"))  # noqa: S704


def mark_words(text_: str, q: str) -> Markup:
    """``text_`` escaped, with each case-insensitive occurrence of a word of ``q`` in
    ``<mark>`` (for titles, which the full-text index does not cover)."""
    text_ = text_.replace(_OPEN, "").replace(_CLOSE, "")
    words = sorted({w for w in q.split() if w}, key=len, reverse=True)
    if not words:
        return escape(text_)
    pattern = re.compile("|".join(re.escape(w) for w in words), re.IGNORECASE)
    return _highlight(pattern.sub(lambda m: _OPEN + m.group(0) + _CLOSE, text_))


def fts5_query(q: str) -> str:
    """A safe FTS5 query: each word quoted (no operators from the person), the last one a
    prefix so results come while typing."""
    words = [w.replace('"', '""') for w in q.split() if w.strip('"')]
    if not words:
        return ""
    quoted = [f'"{w}"' for w in words]
    quoted[-1] += "*"
    return " ".join(quoted)


def _sqlite(user_id: int, q: str) -> list[tuple[int, str, str, int]]:
    match = fts5_query(q)
    if not match:
        return []
    sql = text(f"""
        SELECT m.conversation_id, c.title,
               snippet(messages_fts, 0, '{_OPEN}', '{_CLOSE}', '…', 16) AS snip, m.id
        FROM messages_fts
        JOIN messages m ON m.id = messages_fts.rowid
        JOIN conversations c ON c.id = m.conversation_id
        WHERE messages_fts MATCH :match AND c.user_id = :user
        ORDER BY rank LIMIT :limit""")  # noqa: S608 - only our constant markers are formatted
    return [tuple(r) for r in db.session.execute(sql, {"match": match, "user": user_id,
                                                        "limit": LIMIT * 4})]


def tsquery(q: str) -> str:
    """A safe PostgreSQL tsquery with the same meaning as ``fts5_query``: every word must
    match, the last one as a prefix. Only word characters survive, so no operator does."""
    words = re.findall(r"\w+", q)
    if not words:
        return ""
    return " & ".join(words[:-1] + [words[-1] + ":*"])


def _postgres(user_id: int, q: str) -> list[tuple[int, str, str, int]]:
    query = tsquery(q)
    if not query:
        return []
    sql = text(f"""
        SELECT m.conversation_id, c.title,
               ts_headline('simple', m.content, query,
                           'StartSel={_OPEN}, StopSel={_CLOSE}, MaxWords=24, MinWords=8'),
               m.id
        FROM messages m
        JOIN conversations c ON c.id = m.conversation_id,
             to_tsquery('simple', :q) AS query
        WHERE to_tsvector('simple', m.content) @@ query AND c.user_id = :user
        ORDER BY ts_rank(to_tsvector('simple', m.content), query) DESC
        LIMIT :limit""")  # noqa: S608 - only our constant markers are formatted
    return [tuple(r) for r in db.session.execute(sql, {"q": query, "user": user_id,
                                                        "limit": LIMIT * 4})]


def _titles(user_id: int, q: str) -> list[tuple[int, str]]:
    pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    sql = text("""SELECT id, title FROM conversations
                  WHERE user_id = :user AND lower(title) LIKE lower(:pattern) ESCAPE '\\'
                  ORDER BY updated_at DESC LIMIT :limit""")
    return [tuple(r) for r in db.session.execute(sql, {"user": user_id, "pattern": pattern,
                                                        "limit": LIMIT})]


def search(user_id: int, q: str) -> list[Hit]:
    """Conversations of ``user_id`` whose title or messages match ``q``, best first."""
    q = " ".join(q.split())[:200]
    if not q:
        return []
    hits: dict[int, Hit] = {}
    for conversation_id, title in _titles(user_id, q):
        hits[conversation_id] = Hit(conversation_id, title, Markup(""))
    dialect = db.engine.dialect.name
    rows = _postgres(user_id, q) if dialect == "postgresql" else _sqlite(user_id, q)
    for conversation_id, title, snippet, message_id in rows:
        hit = hits.get(conversation_id)
        if hit is None:
            hits[conversation_id] = Hit(conversation_id, title, _highlight(snippet),
                                        message_id=message_id)
        elif not hit.snippet:
            hit.snippet, hit.message_id = _highlight(snippet), message_id
        if len(hits) >= LIMIT:
            break
    for hit in hits.values():
        hit.title_html = mark_words(hit.title, q)
    return list(hits.values())
