"""In chromium against gunicorn with the fault upstream: the answer is formatted while it
streams and ends as the same HTML, says "Reading the conversation…" until its first word,
says when it was cut at the length limit, and shows images as links."""

from __future__ import annotations

import re

import pytest

from tests.helpers import chat_in_browser, serve, sign_in

pytestmark = pytest.mark.browser


def test_blocks_are_formatted_while_streaming_and_the_end_changes_nothing(
        browser, tmp_path, fault_server):
    fault_server.pause_seconds = 6.0  # time to look at the page before the last paragraph
    server = serve(tmp_path, fault_server, "blocks-then-pause")
    try:
        page = browser.new_page()
        errors = sign_in(page, server.base)
        chat_in_browser(page, server.base, "Format this", wait=False)
        answer = page.locator(".msg-assistant").last
        body = answer.locator(".msg-body")
        # While the answer is still being written, its finished blocks are already HTML.
        body.locator("table").wait_for(timeout=15000)
        assert answer.get_attribute("data-status") in ("pending", "streaming")
        assert body.locator("p strong").inner_text() == "bold"
        assert body.locator("ul > li").count() == 2
        assert "print" in body.locator("pre code").inner_text()
        assert body.locator("td").all_inner_texts() == ["1", "2"]
        # The image is a link (the CSP would block an <img>: a broken image and an error).
        link = body.locator('a[href="http://127.0.0.1:9/cat.png"]')
        assert link.inner_text() == "a cat" and page.locator(".msg img").count() == 0
        # The open block is text, after the finished ones.
        assert body.locator(".streaming").inner_text() == "Still "
        streamed = re.sub(r'<div class="streaming" id="m-\d+-open">[^<]*</div>$', "",
                          body.inner_html())
        assert streamed.startswith("<p>Some <strong>bold</strong>") and "streaming" not in streamed
        page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
        final = page.locator(".msg-assistant.status-complete .msg-body").inner_html()
        # The final HTML is the streamed blocks plus the last paragraph, rendered.
        assert final == streamed + "<p>Still The <em>end</em>.</p>\n"
        assert page.locator(".msg img").count() == 0
        assert not errors, errors
    finally:
        fault_server.pause_seconds = 2.0
        server.stop()


def test_reading_the_conversation_until_the_first_word(browser, tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "slow-first")
    try:
        page = browser.new_page()
        errors = sign_in(page, server.base)
        chat_in_browser(page, server.base, "Hello", wait=False)
        wait = page.locator(".msg-assistant .msg-wait")
        wait.wait_for(timeout=5000)
        assert wait.inner_text() == "Reading the conversation…"
        page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
        assert wait.count() == 0
        assert not errors, errors
    finally:
        server.stop()


def test_an_answer_cut_at_the_length_limit_says_so(browser, tmp_path, fault_server):
    server = serve(tmp_path, fault_server, "length")
    try:
        page = browser.new_page()
        errors = sign_in(page, server.base)
        chat_in_browser(page, server.base, "Tell me everything", wait=False)
        page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
        assert page.locator(".msg-assistant .msg-cut").inner_text() == "Cut at the length limit."
        page.reload()
        assert page.locator(".msg-assistant .msg-cut").inner_text() == "Cut at the length limit."
        assert not errors, errors
    finally:
        server.stop()
