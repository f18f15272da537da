"""Server time of the pages that grow: a conversation with many messages, a long sidebar.

    .venv/bin/python -m bench.pages [--messages 1000] [--versions 3] [--conversations 10000]
                                    [--runs 30]

Builds a fresh SQLite database (or ``--database URL``) with one person who has
``--conversations`` conversations, one of them with ``--messages`` messages on its shown path
(markdown with code, as answers are), each answer in ``--versions`` versions (the middle one
shown, so the path is not simply the newest rows), then times the whole request in-process
(Flask's test client: routing, queries, templates, markdown) for the conversation page, the
first sidebar page (``/``, a new chat) and the sidebar's next page. Prints the median and
the 90th percentile.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from tests.helpers import csrf_from  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.auth.accounts import create_user  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Conversation, Message, utcnow  # noqa: E402
from webapp.rendering import render_markdown  # noqa: E402

ANSWER = ("Here is how:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
          "It returns **the sum**; see [the docs](https://docs.python.org/).\n\n- one\n- two\n")


def build(app, messages: int, conversations: int, versions: int = 1) -> int:
    """Fill the database; returns the big conversation's id."""
    html = str(render_markdown(ANSWER))

    with app.app_context():
        user = create_user("bench", "bench-password")
        now = utcnow()
        rows = [{"user_id": user.id, "title": f"Conversation number {i}",
                 "created_at": now - timedelta(minutes=i), "updated_at": now - timedelta(minutes=i),
                 "pinned": False} for i in range(conversations)]
        for start in range(0, len(rows), 2000):
            db.session.execute(insert(Conversation), rows[start:start + 2000])
        big = Conversation(user_id=user.id, title="The long one", created_at=now,
                           updated_at=now)
        db.session.add(big)
        db.session.flush()
        params = {"temperature": 0.5, "top_p": 1.0, "presence_penalty": 0.0,
                  "frequency_penalty": 0.0}
        rows = []
        parent = None
        for i in range(messages):
            user = i % 2 == 0
            common = {
                "conversation_id": big.id, "role": "user" if user else "assistant",
                "content": f"Question {i}: how do I add two numbers?" if user else ANSWER,
                "html": None if user else html, "parent_id": parent,
                "status": "complete", "provider": "equing", "model": "gpt-3.5-turbo",
                "params": None if user else params, "created_at": now, "updated_at": now,
                "started_at": now, "first_token_at": now, "finished_at": now,
                "stop_requested": False, "token_count": 40}
            count = 1 if user else versions
            # Ids are given so that children can name their parents in one bulk insert.
            first_id = len(rows) + 1
            shown = first_id + count // 2
            rows.extend({**common, "id": first_id + k, "selected": first_id + k == shown}
                        for k in range(count))
            parent = shown
        for start in range(0, len(rows), 2000):
            db.session.execute(insert(Message), rows[start:start + 2000])
        db.session.commit()
        return big.id


def timed(client, path: str, runs: int) -> list[float]:
    client.get(path)  # warm caches (templates, markdown parser)
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(path)
        response.get_data()
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return seconds


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=3,
                        help="versions of every answer (1: a conversation without any)")
    parser.add_argument("--conversations", type=int, default=10000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--database", default="")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/pages.sqlite"
        app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "bench",
                          "PROVIDERS": "equing", "LOG_LEVEL": "WARNING",
                          "RATELIMIT_ENABLED": False})
        with app.app_context():
            upgrade()
        big = build(app, args.messages, args.conversations, args.versions)
        gc.freeze()  # as wsgi.py does once the app is made
        client = app.test_client()
        page = client.get("/login").get_data(as_text=True)
        client.post("/login", data={"username": "bench", "password": "bench-password",
                                    "csrf_token": csrf_from(page)})
        result = {}
        for label, path in ((f"conversation page, {args.messages} messages "
                             f"x{args.versions} versions", f"/c/{big}"),
                            (f"new chat with the sidebar, {args.conversations} conversations",
                             "/"),
                            ("sidebar's next page", "/conversations?page=2")):
            seconds = timed(client, path, args.runs)
            p50 = statistics.median(seconds) * 1000
            p90 = sorted(seconds)[int(len(seconds) * 0.9) - 1] * 1000
            print(f"{label:55} median {p50:7.1f} ms   p90 {p90:7.1f} ms")
            result[path] = p50
        with app.app_context():
            db.engine.dispose()
    return result


if __name__ == "__main__":
    main()
