"""A person in a real browser (Debian's chromium, driven by Playwright) chatting."""

from __future__ import annotations

import os
import time

import pytest

from tests.peers.appserver import AppServer

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is missing: `make test` installs it (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def server(tmp_path, fault_server):
    server = AppServer(tmp_path, {
        "FLASK_PROVIDERS": "equing,local",
        "FLASK_DEFAULT_PROVIDER": "equing",
        "FLASK_EQUING_URL": fault_server.url("slow-markdown"),
    })
    server.start()
    server.flask("users", "create", "alice", "--password", "correct horse")
    yield server
    server.stop()


def sign_in(page, base):
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.goto(base + "/")
    page.fill("#username", "alice")
    page.fill("#password", "correct horse")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/")
    return errors


def test_answer_grows_in_the_page_then_renders_markdown(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    page.fill("#content", "Show me some markdown")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.base}/c/*")
    body = page.locator(".msg-assistant .msg-body").last
    # Sample the streaming text: it must be seen growing before the answer completes.
    lengths = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if page.locator(".msg-assistant.status-complete").count():
            break
        if page.locator(".msg-assistant .streaming").count():
            lengths.append(len(page.locator(".msg-assistant .streaming").inner_text()))
        time.sleep(0.03)
    growing = [n for n in lengths if n > 0]
    assert len(set(growing)) >= 3, f"text did not grow over time: {lengths}"
    assert growing == sorted(growing)
    final = page.locator(".msg-assistant.status-complete .md")
    final.wait_for()
    assert final.locator("strong").inner_text() == "bold"
    assert final.locator("li").count() == 2
    assert "print" in final.locator("pre code").inner_text()
    # The raw HTML in the answer stays text.
    assert "<b>x</b>" in final.inner_text()
    assert page.locator(".msg-assistant b").count() == 0
    assert body.count() == 1
    # The composer is empty and ready, the sidebar shows the new conversation.
    assert page.input_value("#content") == ""
    assert page.locator(".conversation-list a").first.inner_text() == "Show me some markdown"
    assert not errors, errors


def test_second_turn_in_place_and_stop(browser, server, fault_server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    page.fill("#content", "First")
    page.click("#composer button[type=submit]")
    page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
    url = page.url
    page.fill("#content", "Second line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    assert page.input_value("#content") == "Second line one\nline two"
    page.keyboard.press("Enter")
    page.locator(".msg-user").nth(1).wait_for()
    assert page.url == url  # same page, no reload
    assert page.locator(".msg-user .msg-body").nth(1).inner_text() == "Second line one\nline two"
    page.locator(".msg-assistant .streaming").wait_for()
    # (wait_for_function would need 'unsafe-eval', which our CSP rightly refuses)
    streaming = page.locator(".msg-assistant .streaming")
    deadline = time.monotonic() + 10
    while len(streaming.inner_text()) <= 5 and time.monotonic() < deadline:
        time.sleep(0.03)
    page.click(".msg-actions .stop")
    stopped = page.locator(".msg-assistant.status-stopped")
    stopped.wait_for(timeout=10000)
    assert "Stopped." in stopped.inner_text()
    page.reload()
    assert page.locator(".msg-assistant.status-stopped").count() == 1
    assert not errors, errors


@pytest.mark.slow
def test_chat_with_the_embedded_model(browser, tmp_path):
    server = AppServer(tmp_path).start()
    try:
        server.flask("users", "create", "alice", "--password", "correct horse")
        page = browser.new_page()
        errors = sign_in(page, server.base)
        page.fill("#content", "What is the capital of France?")
        page.keyboard.press("Enter")
        page.locator(".msg-assistant.status-complete .md").wait_for(timeout=60000)
        text = page.locator(".msg-assistant .md").inner_text()
        assert text.strip()
        assert "SmolLM2-135M-Instruct" in page.locator(".msg-info summary").inner_text()
        assert not errors, errors
    finally:
        server.stop()
