"""A person in a real browser (Debian's chromium, driven by Playwright) chatting."""

from __future__ import annotations

import time

import pytest

from tests.helpers import chat_in_browser, sign_in
from tests.peers.appserver import AppServer

pytestmark = pytest.mark.browser


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
        # all_inner_texts() does not wait: the element may be swapped out at any moment.
        texts = page.locator(".msg-assistant .msg-body").all_inner_texts()
        if texts:
            lengths.append(len(texts[-1]))
        time.sleep(0.03)
    growing = [n for n in lengths if n > 0]
    assert len(set(growing)) >= 3, f"text did not grow over time: {lengths}"
    # (A block shortens when it is formatted: "**bold**" becomes "bold".)
    assert growing[-1] > growing[0]
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
    while len("".join(streaming.all_inner_texts())) <= 5 and time.monotonic() < deadline:
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
    # A short answer: on a loaded 2-core machine 135M parameters still take a while per
    # token, and this test is about the path through the app, not the answer's length.
    server = AppServer(tmp_path, env={"FLASK_LOCAL_MAX_TOKENS": "64"}).start()
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


def test_share_link_opens_in_a_fresh_browser_without_a_session(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Share this one")
    page.click("#share summary")
    page.click("#share button[type=submit]")
    link = page.locator(".share-link").input_value()
    assert "/s/" in link
    stranger = browser.new_context()  # no cookies: someone without an account
    reader = stranger.new_page()
    reader.goto(link)
    assert reader.locator("h1").inner_text() == "Share this one"
    assert reader.locator(".msg-assistant .md strong").inner_text() == "bold"
    assert reader.locator("textarea").count() == 0
    assert reader.locator('meta[name="robots"]').get_attribute("content") == "noindex, nofollow"
    # Revoked: the same link is gone.
    page.click("#share summary")
    page.click("#share button.danger")
    assert reader.goto(link).status == 404
    stranger.close()
    assert not errors, errors


def test_a_setting_changed_in_the_form_is_used(browser, server, fault_server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    page.goto(server.base + "/settings")
    # Switching the provider swaps in that provider's models (htmx), without a reload.
    page.select_option("#provider", "local")
    page.locator("#model option[value='SmolLM2-135M-Instruct']").wait_for(state="attached")
    page.select_option("#provider", "equing")
    page.locator("#model option[value='gpt-3.5-turbo']").wait_for(state="attached")
    assert page.locator("#model option[value='gpt-4']").count() == 0
    # A wrong value is refused in words, and what was typed stays.
    page.fill("#temperature", "3")
    page.fill("#system_prompt", "Answer like a sailor.")
    page.click(".settings-form button[type=submit]")
    page.get_by_text("Temperature must be between 0 and 2.").wait_for()
    assert page.input_value("#system_prompt") == "Answer like a sailor."
    page.fill("#temperature", "1.25")
    page.fill("#max_tokens", "77")
    page.click(".settings-form button[type=submit]")
    page.get_by_text("Saved. New answers use these settings.").wait_for()
    chat_in_browser(page, server.base, "Use my settings")
    body = fault_server.requests[-1]["body"]
    assert body["temperature"] == 1.25 and body["max_tokens"] == 77
    assert body["messages"][0] == {"role": "system", "content": "Answer like a sailor."}
    page.click(".msg-info summary")
    info = page.locator(".msg-info").inner_text()
    assert "1.25" in info and "77" in info and "Answer like a sailor." in info
    # The refused form's 422 is logged by the browser as a failed load; nothing else may be.
    assert [e for e in errors if "status of 422" not in e] == [], errors


DANGEROUS = ("script:not([src]), .msg script, .msg img, .msg svg, .msg iframe, .msg object, "
             ".msg embed, .msg details[ontoggle], .msg [onmouseover], .msg [onerror], "
             ".msg [onload], a[href^='javascript'], a[href^='data'], h1 img, title img")


def test_no_script_runs_from_hostile_output_or_input(browser, tmp_path, fault_server):
    server = AppServer(tmp_path, {"FLASK_PROVIDERS": "equing",
                                  "FLASK_EQUING_URL": fault_server.url("xss")}).start()
    try:
        server.flask("users", "create", "alice", "--password", "correct horse")
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        sign_in(page, server.base)
        hostile = "<img src=x onerror=alert('u1')>\"'><svg onload=alert('u2')>"
        page.fill("#content", hostile)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.base}/c/*")
        # While streaming: the escaped text grows, and nothing in it is markup. The answer
        # takes about 4 s: wait for its bubble to be there, not for text to be visible at the
        # moment of a poll (the open block is empty between finished blocks).
        page.locator(".msg-assistant .streaming").wait_for(state="attached")
        assert page.locator(DANGEROUS).count() == 0
        seen_streaming = True
        for _ in range(500):
            if page.locator(".msg-assistant.status-complete").count():
                break
            if page.locator(".msg-assistant .streaming").count():
                seen_streaming = True
                assert page.locator(DANGEROUS).count() == 0
            time.sleep(0.01)
        assert seen_streaming
        page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
        assert page.locator(DANGEROUS).count() == 0
        assert "<script>alert('s1')</script>" in page.locator(".msg-assistant .md").inner_text()
        assert page.locator(".msg-user .msg-body").inner_text() == hostile
        # The title (from the first message) in the heading, sidebar and <title>.
        page.reload()
        assert page.locator(DANGEROUS).count() == 0
        assert hostile[:20] in page.locator(".conv-title").inner_text()
        # Hover and click everything a payload might hide behind.
        for element in page.locator(".msg b, .msg a, .msg details").all():
            element.hover()
        for link in page.locator(".msg-assistant .md a").all():
            assert (link.get_attribute("href") or "").startswith(("http", "mailto", "#")) or \
                link.get_attribute("href") is None
        # The shared page, opened by someone without an account.
        page.click("#share summary")
        page.click("#share button[type=submit]")
        link = page.locator(".share-link").input_value()
        reader = browser.new_context().new_page()
        reader.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        reader.goto(link)
        assert reader.locator(DANGEROUS).count() == 0
        assert "<script>alert('s1')</script>" in reader.locator(".msg-assistant .md").inner_text()
        time.sleep(0.3)
        assert dialogs == []
    finally:
        server.stop()
