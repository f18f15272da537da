"""The account routes: setup, sign in, sign out, sign-up, and the first-run redirect."""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user

from ..extensions import db, limiter
from . import bp, failures
from .accounts import by_username, create_user, has_users, password_matches, safe_next, sign_in
from .forms import LoginForm, SignupForm

#: What answers before the first account exists: the setup form itself, static files and the
#: service routes a load balancer or an operator asks before anyone has signed up.
_BEFORE_SETUP = frozenset({"auth.setup", "static", "meta.healthz", "meta.readyz",
                           "meta.highlight_css"})


@bp.before_app_request
def require_setup():
    """Until an admin account exists, every page leads to the setup form."""
    if request.endpoint is None or request.endpoint in _BEFORE_SETUP:
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
        sign_in(create_user(form.username.data, form.password.data, is_admin=True))
        flash("Welcome! Your administrator account is ready.", "ok")
        return redirect(url_for("chat.index"))
    return render_template("auth/setup.html", form=form), 422 if form.errors else 200


def _login_page(form: LoginForm, status: int):
    return current_app.make_response((render_template(
        "auth/login.html", form=form, signup_open=current_app.config["SIGNUP_OPEN"]), status))


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
            response = _login_page(form, 429)
            response.headers["Retry-After"] = str(attempt.retry_after)
            return response
        user = by_username(username)
        if password_matches(user, form.password.data):
            failures.succeeded(attempt)
            target = safe_next(request.args.get("next"))
            sign_in(user, remember=form.remember.data)
            return redirect(target)
        form.password.errors.append("Wrong username or password.")
    return _login_page(form, 422 if form.errors else 200)


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
        if by_username(form.username.data.strip()) is not None:
            form.username.errors.append("That username is taken.")
        else:
            sign_in(create_user(form.username.data, form.password.data))
            return redirect(url_for("chat.index"))
    return render_template("auth/signup.html", form=form), 422 if form.errors else 200
