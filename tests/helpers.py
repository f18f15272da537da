"""Helpers shared by several test files (fixtures live in conftest.py)."""

from __future__ import annotations

#: Debian's chromium, driven by Playwright (Playwright's own browser download does not work
#: here), with the flags that keep it off the network and quiet.
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def sign_in(page, base, path="/"):
    """Sign in as alice through the form (at ``path``, which may carry a ``next``); returns the
    list that collects the page's script errors and console errors from then on."""
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + path)
    page.fill("#username", "alice")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    if path == "/":
        page.wait_for_url(base + "/")
    return errors
