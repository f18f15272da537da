"""Sign-in hardening (issue 14, points 2, 8, 9) and the operator's first minutes (issue 13,
points 11, 12): redirects stay on the site, unknown names cost what known ones do, failed
sign-ins are counted where every worker sees them, `flask` speaks of migrations only in
`flask db`, and `make run` says where to open the app."""

from __future__ import annotations

import os
import runpy
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from tests.helpers import csrf_from, rows
from tests.peers import process
from tests.peers.appserver import AppServer
from tests.peers.database import database
from webapp.checks import config_problems, live_checks
from webapp.extensions import db
from webapp.models import SignInFailure, utcnow

ROOT = Path(__file__).resolve().parent.parent


def sign_in(app, username="alice", password="correct horse", query="", address="127.0.0.1"):
    """One sign-in through the form from ``address``; the response."""
    client = app.test_client()
    environ = {"REMOTE_ADDR": address}
    page = client.get("/login", environ_base=environ).get_data(as_text=True)
    return client.post(f"/login{query}", environ_base=environ, data={
        "username": username, "password": password, "csrf_token": csrf_from(page)})


# -- 14.2: after sign-in, only a path on this site ---------------------------------------------

@pytest.mark.parametrize("raw_next", [
    "/%09/evil.example",            # a tab a browser drops: //evil.example
    "/%0a/evil.example", "/%0d%0a/evil.example",
    "%0d%0aSet-Cookie:%20x=1",      # CRLF: a 500 before (a header cannot hold it)
    "/%0d%0aSet-Cookie:%20x=1",
    "%20//evil.example", "/%00/evil.example", "/%7f/evil.example",
    "/%5Cevil.example", "/%5C/evil.example", "//evil.example", "https://evil.example/",
    "evil.example", "javascript:alert(1)",
])
def test_sign_in_never_sends_anyone_off_the_site(app, make_user, raw_next):
    make_user("alice")
    response = sign_in(app, query=f"?next={raw_next}")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("target", ["/c/12", "/c/12?tab=settings", "/s/abc_DEF-1", "/settings"])
def test_sign_in_follows_a_path_on_this_site(app, make_user, target):
    make_user("alice")
    response = sign_in(app, query=f"?next={requests.utils.quote(target, safe='')}")
    assert response.status_code == 302 and response.headers["Location"] == target


# -- 14.8: no username oracle ------------------------------------------------------------------

def _seconds(app, username):
    start = time.perf_counter()
    assert sign_in(app, username=username, password="wrong password").status_code == 422
    return time.perf_counter() - start


def test_an_unknown_name_costs_the_same_hashing_as_a_known_one(app, make_user):
    make_user("alice")
    _seconds(app, "nobody"), _seconds(app, "alice")  # warm up: the dummy hash is made once
    known, unknown = [], []
    for _ in range(5):
        known.append(_seconds(app, "alice"))
        unknown.append(_seconds(app, "nobody"))
    # Before: 11 ms against 148 ms (no hash checked for an unknown name). Both check one now.
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.4 < ratio < 2.5, (known, unknown)


# -- 14.9: failed sign-ins counted in the database ----------------------------------------------

@pytest.fixture()
def limited(app, make_user):
    """The app with limits on: three failures per window, Flask-Limiter out of the way."""
    app.config.update(RATELIMIT_ENABLED=True, LOGIN_RATE_LIMIT="1000 per minute",
                      SIGN_IN_FAILURE_LIMIT=3, SIGN_IN_FAILURE_WINDOW_SECONDS=600)
    make_user("alice")
    make_user("bob")
    return app



@pytest.mark.ratelimits
def test_an_account_is_locked_after_the_limit_from_any_address(limited):
    statuses = [sign_in(limited, password="wrong", address=f"10.0.0.{n}").status_code
                for n in range(3)]
    assert statuses == [422, 422, 422]
    locked = sign_in(limited, address="10.0.0.9")  # the right password, a new address
    assert locked.status_code == 429
    assert "Too many failed sign-ins for this account or from this address" in \
        locked.get_data(as_text=True)
    assert 0 < int(locked.headers["Retry-After"]) <= 600
    # Another account from another address is not affected.
    assert sign_in(limited, username="bob", address="10.0.0.10").status_code == 302
    # Refused attempts are not failures: the lock ends a window after the third failure.
    assert len(rows(limited, SignInFailure)) == 3


@pytest.mark.ratelimits
def test_an_address_is_locked_after_the_limit_whatever_the_names(limited):
    for name in ("carol", "dave", "alice"):
        assert sign_in(limited, username=name, password="wrong").status_code == 422
    assert sign_in(limited, username="bob").status_code == 429
    assert sign_in(limited, username="bob", address="10.1.1.1").status_code == 302


@pytest.mark.ratelimits
def test_a_successful_sign_in_is_not_counted_and_clears_the_accounts_failures(limited):
    for _ in range(2):
        assert sign_in(limited, password="wrong", address="10.0.0.1").status_code == 422
    assert sign_in(limited, address="10.0.0.2").status_code == 302
    assert [row.account for row in rows(limited, SignInFailure)] == []
    for _ in range(3):
        assert sign_in(limited, password="wrong", address="10.0.0.3").status_code == 422
    assert sign_in(limited, address="10.0.0.4").status_code == 429


@pytest.mark.ratelimits
def test_failures_older_than_the_window_no_longer_count(limited):
    for _ in range(3):
        assert sign_in(limited, password="wrong").status_code == 422
    assert sign_in(limited).status_code == 429
    with limited.app_context():
        db.session.execute(update(SignInFailure).values(
            created_at=utcnow() - timedelta(seconds=601)))
        db.session.commit()
    assert sign_in(limited).status_code == 302
    with limited.app_context():  # expired rows are deleted as new attempts come
        assert db.session.scalars(select(SignInFailure)).all() == []


@pytest.mark.ratelimits
@pytest.mark.parametrize(("username", "password"), [
    ("al\x00ice", "correct horse"), ("alice", "correct\x00horse"), ("\x00", "\x00")])
def test_sign_in_with_a_nul_is_refused_in_words(app, make_user, username, password):
    make_user("alice")
    # A NUL in the name was a 500 on PostgreSQL (it cannot be stored, nor compared with).
    response = sign_in(app, username=username, password=password)
    assert response.status_code == 422
    assert "This cannot hold a NUL character." in response.get_data(as_text=True)
    assert rows(app, SignInFailure) == []


def test_failure_limit_settings_are_checked(app):
    problems = config_problems({**app.config, "SIGN_IN_FAILURE_LIMIT": 0,
                                "SIGN_IN_FAILURE_WINDOW_SECONDS": "soon"})
    assert "SIGN_IN_FAILURE_LIMIT must be at least 1, not 0" in problems
    assert "SIGN_IN_FAILURE_WINDOW_SECONDS must be a whole number, not 'soon'" in problems


@pytest.mark.ratelimits
def test_flask_check_says_memory_storage_counts_per_worker(app, monkeypatch):
    def notes():
        return [what for ok, what in live_checks(app) if ok is None]

    monkeypatch.setenv("GUNICORN_WORKERS", "2")
    (note,) = [n for n in notes() if "RATELIMIT_STORAGE_URI" in n]
    assert "memory:// counts in each of the 2 gunicorn workers alone" in note
    monkeypatch.setenv("GUNICORN_WORKERS", "1")
    assert not [n for n in notes() if "RATELIMIT_STORAGE_URI" in n]


@pytest.fixture()
def two_workers(tmp_path):
    server = AppServer(tmp_path, {
        "FLASK_PROVIDERS": "equing",
        "FLASK_WTF_CSRF_ENABLED": "false",
        # Flask-Limiter's per-worker count out of the way: what holds is the database's.
        "FLASK_LOGIN_RATE_LIMIT": "1000 per minute",
        "FLASK_SIGN_IN_FAILURE_LIMIT": "5",
        "FLASK_TRUSTED_PROXIES": "1",
    }, workers=2)
    server.start()
    server.flask("users", "create", "alice", "--password", "correct horse")
    yield server
    server.stop()


def test_two_workers_accept_at_most_the_limit_of_30_attempts(two_workers):
    def attempt(n, username, address):
        response = requests.post(two_workers.base + "/login", timeout=30, allow_redirects=False,
                                 data={"username": username, "password": f"wrong {n}"},
                                 headers={"X-Forwarded-For": address})
        assert response.status_code in (422, 429), response.text
        return response.status_code

    with ThreadPoolExecutor(6) as pool:
        # One account from 30 addresses (before: all 30 checked; 14 under Flask-Limiter's 5).
        per_account = list(pool.map(lambda n: attempt(n, "alice", f"10.2.0.{n}"), range(30)))
        # 30 names, known or not, from one address.
        per_address = list(pool.map(lambda n: attempt(n, f"user{n}", "10.3.0.1"), range(30)))
    assert 1 <= per_account.count(422) <= 5, per_account
    assert 1 <= per_address.count(422) <= 5, per_address
    right = requests.post(two_workers.base + "/login", allow_redirects=False, timeout=30,
                          data={"username": "alice", "password": "correct horse"},
                          headers={"X-Forwarded-For": "10.4.0.1"})
    assert right.status_code == 429 and "Too many failed sign-ins" in right.text


# -- 13.11: only `flask db` speaks of migrations ----------------------------------------------

def test_flask_commands_print_no_alembic_lines(tmp_path):
    with database(tmp_path, "quiet") as url:
        env = {**os.environ, "FLASK_APP": "wsgi:app", "DATABASE_URL": url,
               "FLASK_INSTANCE_PATH": str(tmp_path / "instance"), "FLASK_PROVIDERS": "equing",
               "PYTHONPATH": str(ROOT)}

        def flask(*args):
            result = subprocess.run([sys.executable, "-m", "flask", *args], cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout + result.stderr

        migrated = flask("db", "upgrade")
        assert "Running upgrade" in migrated  # `flask db` still says what it does
        for command in (["users", "create", "ops", "--password", "long enough"],
                        ["providers", "--no-probe"], ["users", "--help"]):
            output = flask(*command)
            assert "alembic" not in output.lower() and "INFO" not in output, output
        assert flask("providers", "--no-probe").startswith("equing [default]")


# -- 13.12: where to open the app --------------------------------------------------------------

def test_gunicorn_says_where_to_open_the_app(capsys):
    hooks = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    class Server:
        LISTENERS = []

    for host in ("127.0.0.1", "0.0.0.0"):
        sock = socket.socket()
        sock.bind((host, 0))
        Server.LISTENERS.append(sock)
    try:
        hooks["when_ready"](Server())
    finally:
        ports = [sock.getsockname()[1] for sock in Server.LISTENERS]
        for sock in Server.LISTENERS:
            sock.close()
    out = capsys.readouterr().out
    assert f"Equing Chat is ready: open http://127.0.0.1:{ports[0]}/\n" in out
    assert f"open http://<this machine's address>:{ports[1]}/ " in out


def test_a_served_app_prints_the_address_set_by_gunicorn_bind(tmp_path):
    server = AppServer(tmp_path, {"FLASK_PROVIDERS": "equing"})
    server.start()
    proc = server.proc
    server.proc = None
    process.stop(proc)
    output = proc.stdout.read()
    server.stop()
    assert f"Equing Chat is ready: open http://127.0.0.1:{server.port}/" in output


def test_readme_says_how_to_change_the_address_and_port():
    readme = (ROOT / "README.md").read_text()
    assert "GUNICORN_BIND" in readme and "0.0.0.0:8080" in readme
    assert "prints the address to open" in readme
