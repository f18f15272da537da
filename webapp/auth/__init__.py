"""Accounts: first-run setup of the admin, sign in, sign out, optional sign-up."""

from __future__ import annotations

import re
import secrets
from functools import cache

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from ..extensions import app_state, db, limiter, login_manager
from ..models import User, UserSettings
from ..queries import people
from . import failures
from .forms import LoginForm, SignupForm

bp = Blueprint("auth", __name__)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    """Flask-Login's loader: the signed-in person, if the session's token is still theirs."""
    user_id, _, token = session_id.partition(":")
    try:
        user = db.session.get(User, int(user_id))
    except ValueError:
        return None
    if user is None or not secrets.compare_digest(user.session_token or "", token):
        return None
    return user


def has_users() -> bool:
    """Whether any account exists; cached once true (accounts are not all deleted in use)."""
    if app_state().has_users:
        return True
    found = db.session.scalar(people.count()) > 0
    if found:
        app_state().has_users = True
    return found


def create_user(username: str, password: str, *, is_admin: bool = False) -> User:
    """Create an account with the seed's default generation settings."""
    user = User(username=username.strip(), is_admin=is_admin)
    user.set_password(password)
    user.settings = UserSettings()
    db.session.add(user)
    db.session.commit()
    return user


#: ASCII whitespace and control characters: browsers drop them from a URL before reading it, so
#: ``/<TAB>/evil.example`` is followed as ``//evil.example``, another site.
_INVISIBLE = re.compile(r"[\x00-\x20\x7f]")


def _safe_next(target: str | None) -> str:
    """Where to go after sign-in: ``target`` if it is a path on this site (one leading ``/``,
    not ``//`` or ``/\\``, nothing a browser would drop), else the home page."""
    if (target and not _INVISIBLE.search(target) and target.startswith("/")
            and not target.startswith("//") and "\\" not in target):
        return target
    return url_for("chat.index")


@cache
def _dummy_hash() -> str:
    """A hash made the way ``User.set_password`` makes them, of a password nobody knows."""
    return generate_password_hash(secrets.token_hex(16))


def _password_matches(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s; an unknown name costs the same hashing as a known one,
    so the time of an answer does not tell which names have accounts."""
    if user is None:
        check_password_hash(_dummy_hash(), password)
        return False
    return user.check_password(password)


def _sign_in(user: User, remember: bool = False) -> None:
    # A fresh session at sign-in: nothing set before it (by anyone) carries over.
    session.clear()
    login_user(user, remember=remember)


@bp.before_app_request
def require_setup():
    """Until an admin account exists, every page leads to the setup form."""
    if request.endpoint in ("auth.setup", "static", "meta.healthz", "meta.readyz",
                            "meta.highlight_css") or request.endpoint is None:
        return None
    if not has_users():
        return redirect(url_for("auth.setup"))
    return None


@bp.route("/setup", methods=["GET", "POST"])
def setup():
    """First run: create the administrator's account."""
    if has_users():
        return redirect(url_for("auth.login"))
    form = SignupForm()
    if form.validate_on_submit():
        user = create_user(form.username.data, form.password.data, is_admin=True)
        _sign_in(user)
        flash("Welcome! Your administrator account is ready.", "ok")
        return redirect(url_for("chat.index"))
    return render_template("auth/setup.html", form=form), 422 if form.errors else 200


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"])
def login():
    """Sign in with a username and password."""
    if current_user.is_authenticated:
        return redirect(url_for("chat.index"))
    form = LoginForm()
    if form.validate_on_submit():
        username = form.username.data.strip()
        attempt = failures.begin(username)
        if isinstance(attempt, failures.Refusal):
            form.password.errors.append(attempt.message)
            response = current_app.make_response((render_template(
                "auth/login.html", form=form, signup_open=current_app.config["SIGNUP_OPEN"]),
                429))
            response.headers["Retry-After"] = str(attempt.retry_after)
            return response
        user = db.session.scalar(people.by_username(username))
        if _password_matches(user, form.password.data):
            failures.succeeded(attempt)
            target = _safe_next(request.args.get("next"))
            _sign_in(user, remember=form.remember.data)
            return redirect(target)
        form.password.errors.append("Wrong username or password.")
    status = 422 if form.errors else 200
    return render_template("auth/login.html", form=form,
                           signup_open=current_app.config["SIGNUP_OPEN"]), status


@bp.post("/logout")
@login_required
def logout():
    """Sign out: this session and every other of the person's end."""
    current_user.end_sessions()
    db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/signup", methods=["GET", "POST"])
def signup():
    """Create an account, when the operator has opened sign-up."""
    if not current_app.config["SIGNUP_OPEN"]:
        return render_template("auth/signup_closed.html"), 403
    form = SignupForm()
    if form.validate_on_submit():
        if db.session.scalar(people.by_username(form.username.data.strip())) is not None:
            form.username.errors.append("That username is taken.")
        else:
            _sign_in(create_user(form.username.data, form.password.data))
            return redirect(url_for("chat.index"))
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200
