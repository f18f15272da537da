"""An answer outlives its page (issue 16), in chromium against gunicorn: reloading, closing the
tab, a second tab, a dropped network, Stop from another tab, a page without JavaScript and the
sidebar. The upstream streams "w0 w1 … w59" (the fault server's ``words`` scenario) and
can hold the answer before a given word, so each test knows the answer is still being written
while it does what it does to the page; that the words on the page are always w0, w1, … in
order shows that none was repeated or lost."""

from __future__ import annotations

import threading

import pytest
from playwright.sync_api import expect

from tests.helpers import answer_row, chat_in_browser, serve, sign_in, wait_until
from tests.peers.fault_upstream import WORDS_TEXT
from tests.peers.netproxy import NetProxy

pytestmark = pytest.mark.browser

WORDS = WORDS_TEXT.split()

#: Records what each answer's body holds after every streamed message, and at page load (the
#: text the page was rendered with): a word repeated or missing shows in one of them, even if
#: the final message then replaces the whole answer with the saved text.
RECORD = """
window.__seen = [];
function __record(elt) { window.__seen.push(elt.textContent); }
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".msg-body[id$='-body']").forEach(__record);
});
document.addEventListener("htmx:sse:after:message", function (evt) {
  var elt = evt.target;
  if (elt.isConnected && elt.matches && elt.matches(".msg-body[id$='-body']")) __record(elt);
}, true);
"""


class Numbered:
    """gunicorn on the ``words`` scenario, and the holds of its upstream."""

    def __init__(self, server, fault_server):
        self.server = server
        self.fault_server = fault_server
        self.base = server.base

    def hold(self, *words: int) -> dict[int, threading.Event]:
        """From now on, the upstream waits before each of ``words`` until its event is set."""
        holds = {i: threading.Event() for i in words}
        self.fault_server.holds = holds
        return holds

    def release(self) -> None:
        for event in self.fault_server.holds.values():
            event.set()


@pytest.fixture()
def numbered(tmp_path, fault_server):
    app = Numbered(serve(tmp_path, fault_server, "words"), fault_server)
    yield app
    app.release()  # no upstream thread stays held after the test
    fault_server.holds = {}
    app.server.stop()


def new_context(browser):
    context = browser.new_context()
    context.add_init_script(RECORD)
    return context


def answer_of(page):
    return page.locator(".msg-assistant").last


def body_of(page):
    return answer_of(page).locator(".msg-body")


def shown(upto: int) -> str:
    """The answer's text once it reached word ``upto`` (excluded)."""
    return " ".join(WORDS[:upto])


def wait_words(page, upto: int, timeout: float = 20000) -> None:
    """Until the page's answer shows exactly the first ``upto`` words."""
    expect(body_of(page)).to_have_text(shown(upto), timeout=timeout)


def message_id(page) -> int:
    return int(answer_of(page).get_attribute("id").split("-")[1])


def assert_seen_in_order(page) -> list[int]:
    """Every state the page's answer was in was the first words in order (nothing repeated or
    missing); the numbers of words of those states."""
    counts = []
    for text in page.evaluate("window.__seen"):
        words = text.split()
        assert words == WORDS[:len(words)], f"not w0, w1, … in order: {text!r}"
        counts.append(len(words))
    return counts


def assert_complete(page) -> None:
    """The page shows the whole answer, complete, once."""
    complete = page.locator(".msg-assistant.status-complete")
    complete.wait_for(timeout=20000)
    assert complete.count() == 1
    assert body_of(page).inner_text().split() == WORDS
    assert "Stopped" not in page.locator("#messages").inner_text()


def assert_saved_whole(numbered, mid: int) -> None:
    row = answer_row(numbered.server, mid)
    assert (row.status, row.error) == ("complete", None)
    assert row.content.split() == WORDS


def test_reload_mid_answer_shows_the_whole_answer_once(browser, numbered):
    numbered.hold(20)
    context = new_context(browser)
    page = context.new_page()
    errors = sign_in(page, numbered.base)
    chat_in_browser(page, numbered.base, "Count for me", wait=False)
    wait_words(page, 20)
    mid = message_id(page)
    before = assert_seen_in_order(page)
    page.reload()
    # The page comes back with the text so far and goes on with the live words.
    assert answer_of(page).get_attribute("data-status") == "streaming"
    wait_words(page, 20)
    numbered.release()
    assert_complete(page)
    after = assert_seen_in_order(page)
    # The reloaded page started with the text saved so far and got the rest live.
    assert max(before) == 20 and min(after) <= 20 and max(after) == len(WORDS), (before, after)
    assert_saved_whole(numbered, mid)
    context.close()
    assert not errors, errors


def test_close_the_tab_then_open_the_conversation_later(browser, numbered):
    holds = numbered.hold(20)
    context = new_context(browser)
    page = context.new_page()
    errors = sign_in(page, numbered.base)
    conversation = chat_in_browser(page, numbered.base, "Count for me", wait=False)
    wait_words(page, 20)
    mid = message_id(page)
    page.close()
    holds[20].set()
    # No page watches it: it is written to its end all the same.
    assert wait_until(lambda: answer_row(numbered.server, mid).status != "streaming", 20)
    assert_saved_whole(numbered, mid)
    later = context.new_page()
    later.goto(f"{numbered.base}/c/{conversation}")
    assert_complete(later)
    context.close()
    assert not errors, errors


def test_a_second_tab_sees_the_same_answer_grow(browser, numbered):
    holds = numbered.hold(20, 40)
    context = new_context(browser)
    first = context.new_page()
    errors = sign_in(first, numbered.base)
    conversation = chat_in_browser(first, numbered.base, "Count for me", wait=False)
    wait_words(first, 20)
    second = context.new_page()
    second.goto(f"{numbered.base}/c/{conversation}")
    wait_words(second, 20)
    assert answer_of(second).get_attribute("data-status") == "streaming"
    holds[20].set()
    # Both grow live (no reload) to where the answer is held again, then to the end.
    for page in (first, second):
        wait_words(page, 40)
        assert answer_of(page).get_attribute("data-status") == "streaming"
    holds[40].set()
    for page in (first, second):
        assert_complete(page)
        counts = assert_seen_in_order(page)
        assert any(20 < n <= 40 for n in counts) and any(n > 40 for n in counts), counts
    assert body_of(first).inner_html() == body_of(second).inner_html()
    context.close()
    assert not errors, errors


#: What a page logs while its network is away: the failed loads (the sidebar's polls, the
#: stream's attempts to reconnect) and htmx's word for them.
OFFLINE_NOISE = ("ERR_INTERNET_DISCONNECTED", "Failed to fetch", "ERR_CONNECTION_RESET",
                 "ERR_EMPTY_RESPONSE", "ERR_INCOMPLETE_CHUNKED_ENCODING",
                 "ERR_CONNECTION_CLOSED", "network error", "SSE reconnect failed")


def real_errors(errors):
    return [e for e in errors if not any(noise in e for noise in OFFLINE_NOISE)]


def stream_requests(context):
    """The answer streams the pages of ``context`` ask for from now on: (url, Last-Event-ID)."""
    found = []
    context.on("request", lambda request: found.append(
        (request.url, request.headers.get("last-event-id"))) if "/stream" in request.url
        else None)
    return found


def counting_through(browser, proxy):
    """A page of a new context, signed in through ``proxy``, whose answer has reached word
    20 (held there); its context, page, script errors and the streams it asks for from now
    on."""
    context = new_context(browser)
    page = context.new_page()
    errors = sign_in(page, proxy.base)
    chat_in_browser(page, proxy.base, "Count for me", wait=False)
    wait_words(page, 20)
    return context, page, errors, stream_requests(context)


def test_offline_and_back_mid_answer(browser, numbered):
    """``set_offline`` as it is: chromium fails the requests started while offline, but the
    answer's stream, already open, keeps flowing; the answer ends whole and in order."""
    holds = numbered.hold(20, 40)
    context = new_context(browser)
    page = context.new_page()
    errors = sign_in(page, numbered.base)
    chat_in_browser(page, numbered.base, "Count for me", wait=False)
    wait_words(page, 20)
    streams = stream_requests(context)
    context.set_offline(True)
    holds[20].set()  # the answer goes on while the page is offline
    page.wait_for_timeout(2000)  # the length of the outage, not a wait for something
    context.set_offline(False)
    wait_words(page, 40)
    holds[40].set()
    assert_complete(page)
    assert_seen_in_order(page)
    assert streams == []  # the open stream was never broken, so never reopened
    context.close()
    assert not real_errors(errors), errors


def test_network_dropped_and_restored_mid_answer_resumes(browser, numbered):
    """The connections cut under the page (and new ones failing) for a while: htmx reconnects
    with Last-Event-ID and the stream resumes after the last word the page had."""
    holds = numbered.hold(20, 40)
    proxy = NetProxy(numbered.server.port).start()
    try:
        context, page, errors, streams = counting_through(browser, proxy)
        last_id = page.evaluate("document.querySelector('.msg-body[id$=\"-body\"]')"
                                "._htmx.sse.lastEventId")
        context.set_offline(True)
        proxy.down = True
        assert proxy.cut() >= 1
        page.get_by_text("The connection to this answer was lost; reconnecting…").wait_for()
        holds[20].set()  # words 20 to 39 are written while the page is cut off
        page.wait_for_timeout(2000)  # the length of the outage, not a wait for something
        proxy.down = False
        context.set_offline(False)
        wait_words(page, 40)  # resumed: still held before word 40, so not the final page
        assert answer_of(page).get_attribute("data-status") == "streaming"
        expect(page.locator(".stream-lost")).to_have_count(0)
        holds[40].set()
        assert_complete(page)
        assert_seen_in_order(page)
        # It asked to resume after the last word it had, and the answer's URL stayed the same.
        assert streams and all(url.endswith("after=0") for url, _ in streams), streams
        assert (streams[-1][1] or "").isdigit() and int(streams[-1][1]) >= int(last_id), streams
        context.close()
        assert not real_errors(errors), errors
    finally:
        proxy.close()


def test_a_silent_connection_is_restarted_where_it_stopped(browser, numbered):
    """A connection that dies without closing (nothing comes, not even keepalives): the page
    notices the silence (static/js/answer-watch.js), opens the stream again after its last
    event and shows the rest, nothing repeated or missing."""
    holds = numbered.hold(20, 40)
    proxy = NetProxy(numbered.server.port).start()
    try:
        context, page, errors, streams = counting_through(browser, proxy)
        assert proxy.stall() >= 1
        holds[20].set()
        # Restarted after some 6 s of silence, it gets the words written meanwhile.
        wait_words(page, 40, timeout=30000)
        assert answer_of(page).get_attribute("data-status") == "streaming"
        assert any("last=" in url for url, _ in streams), streams
        holds[40].set()
        assert_complete(page)
        assert_seen_in_order(page)
        context.close()
        assert not real_errors(errors), errors
    finally:
        proxy.close()


def test_stop_from_a_second_tab_stops_it_in_both(browser, numbered):
    numbered.hold(20)
    context = new_context(browser)
    first = context.new_page()
    errors = sign_in(first, numbered.base)
    conversation = chat_in_browser(first, numbered.base, "Count for me", wait=False)
    wait_words(first, 20)
    mid = message_id(first)
    second = context.new_page()
    second.goto(f"{numbered.base}/c/{conversation}")
    wait_words(second, 20)
    second.get_by_role("button", name="Stop", exact=True).click()
    for page in (first, second):
        stopped = page.locator(".msg-assistant.status-stopped")
        stopped.wait_for(timeout=10000)
        expect(stopped.locator(".msg-note")).to_have_text("Stopped.")
        assert body_of(page).inner_text().split() == WORDS[:20]
        assert page.get_by_role("button", name="Stop", exact=True).count() == 0
        assert_seen_in_order(page)
    row = answer_row(numbered.server, mid)
    assert row.status == "stopped" and row.content.split() == WORDS[:20]
    context.close()
    assert not errors, errors


REFRESH = 'meta[http-equiv="refresh"]'


def test_without_javascript_the_page_refreshes_until_the_answer_is_done(browser, numbered):
    holds = numbered.hold(20, 40)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, numbered.base)
    page.get_by_role("textbox", name="Message", exact=True).fill("Count for me")
    page.get_by_role("button", name="Send", exact=True).click()
    page.wait_for_url(f"{numbered.base}/c/*")
    loads = []
    page.on("load", lambda _: loads.append(1))
    # Held before word 20: the page shows the words so far, and keeps refreshing itself.
    wait_words(page, 20)
    path = page.url.removeprefix(numbered.base).split("#")[0]
    assert page.locator(REFRESH).get_attribute("content") == f"2; url={path}"
    assert answer_of(page).get_attribute("data-status") == "streaming"
    holds[20].set()
    seen = len(loads)
    wait_words(page, 40)
    assert len(loads) > seen  # it came with a refresh, not by itself
    assert answer_of(page).get_attribute("data-status") == "streaming"
    holds[40].set()
    page.locator(".msg-assistant.status-complete").wait_for(timeout=20000)
    assert body_of(page).inner_text().split() == WORDS
    assert page.locator(REFRESH).count() == 0  # done: no more refreshing
    context.close()


def test_the_sidebar_marks_a_running_answer_until_it_ends(browser, numbered):
    context = new_context(browser)
    page = context.new_page()
    errors = sign_in(page, numbered.base)
    beta = chat_in_browser(page, numbered.base, "Beta")  # finished
    holds = numbered.hold(20)
    alpha = chat_in_browser(page, numbered.base, "Alpha", wait=False)
    wait_words(page, 20)
    page.get_by_role("link", name="Beta", exact=True).click()
    page.wait_for_url(f"{numbered.base}/c/{beta}")
    page.evaluate("window.__same_page = true")  # gone if the page is loaded again
    running = page.locator("#conversation-list li.running")
    expect(running).to_have_count(1)
    expect(running.locator("a")).to_have_attribute("href", f"/c/{alpha}")
    expect(running.locator(".running-mark")).to_have_text("(an answer is being written)")
    holds[20].set()
    # The answer ends while the person is elsewhere: the mark goes, without a reload.
    expect(running).to_have_count(0, timeout=20000)
    expect(page.locator(".running-mark")).to_have_count(0)
    assert page.evaluate("window.__same_page === true")
    page.get_by_role("link", name="Alpha", exact=True).click()
    page.wait_for_url(f"{numbered.base}/c/{alpha}")
    assert_complete(page)
    context.close()
    assert not errors, errors
