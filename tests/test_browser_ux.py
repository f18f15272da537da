"""What a new user hits in the first ten minutes (issue 13, points 1-6), in a real browser
against gunicorn: the composer, the phone drawer, search as you type, the sidebar following a
turn, the "Chat settings •" mark and accessibility. Controls are found by accessible name."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import expect

from tests.helpers import chat_in_browser, serve, sign_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


@pytest.fixture()
def endless(tmp_path, fault_server):
    """The app whose answers stream a token every 20 ms for 20 s: always one running."""
    app = serve(tmp_path, fault_server, "endless")
    yield app
    app.stop()


def phone_page(browser, width=PHONE["width"], height=PHONE["height"]):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  is_mobile=True, has_touch=True)
    return context.new_page()


def wait_streaming(page, n):
    """Until the ``n``-th answer (from 1) has some text on screen."""
    body = page.locator(".msg-assistant").nth(n - 1).locator(".streaming")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if "".join(body.all_inner_texts()).strip():
            return
        time.sleep(0.03)
    raise AssertionError("the answer never started streaming")


def sidebar_titles(page):
    return [t.strip() for t in page.locator("#conversation-list > li > a").all_inner_texts()]


# -- 1 and 6: the composer, Stop, Esc -----------------------------------------------------------

def test_composer_empties_keeps_focus_and_clears_old_errors(browser, endless):
    page = browser.new_page()
    errors = sign_in(page, endless.base)
    box = page.get_by_role("textbox", name="Message", exact=True)
    chat_in_browser(page, endless.base, "First", wait=False)
    wait_streaming(page, 1)
    # Esc in the composer stops the running answer.
    box.focus()
    page.keyboard.press("Escape")
    page.locator(".msg-assistant.status-stopped").wait_for(timeout=10000)

    # A second message in the same conversation: accepted, so emptied, and the focus stays.
    box.fill("Second")
    page.keyboard.press("Enter")
    page.locator(".msg-user").nth(1).wait_for()
    expect(box).to_have_value("")
    expect(box).to_be_focused()
    # Enter again sends nothing (the old composer sent "Second" twice).
    page.keyboard.press("Enter")
    time.sleep(0.5)
    expect(page.locator(".msg-user")).to_have_count(2)
    expect(page.locator("#composer-error")).to_have_text("")

    # While it is written, another message is refused: the error shows, the text stays.
    box.fill("Third")
    page.keyboard.press("Enter")
    expect(page.locator("#composer-error")).to_contain_text("still being written")
    expect(box).to_have_value("Third")

    # Stop with the mouse: the button goes with its answer, the focus goes to the composer.
    page.get_by_role("button", name="Stop", exact=True).click()
    page.locator(".msg-assistant.status-stopped").nth(1).wait_for(timeout=10000)
    expect(box).to_be_focused()

    # Send with the mouse: accepted, so the old error goes and the composer is empty again.
    page.get_by_role("button", name="Send", exact=True).click()
    page.locator(".msg-user").nth(2).wait_for()
    expect(box).to_have_value("")
    expect(page.locator("#composer-error")).to_have_text("")
    expect(box).to_be_focused()
    assert page.locator(".msg-user .msg-body").nth(2).inner_text() == "Third"
    wait_streaming(page, 3)
    page.keyboard.press("Escape")
    expect(page.locator(".msg-assistant.status-stopped")).to_have_count(3, timeout=10000)
    expect(box).to_be_focused()
    assert [e for e in errors if "status of 409" not in e] == [], errors


def test_skip_link_and_a_live_region_that_outlives_the_answer(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Hello there")
    page.reload()
    # The first thing Tab reaches (from the top: the composer has the focus on load) is the
    # skip link, and it leads into the conversation.
    page.evaluate("document.body.tabIndex = -1; document.body.focus(); "
                  "document.body.removeAttribute('tabindex')")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to the conversation", exact=True)
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    # The message list is not live (it would read an answer token by token); a polite region
    # outside it reads a finished answer once (tests/test_controls_browser.py).
    messages = page.get_by_role("region", name="Messages")
    expect(messages).to_have_attribute("id", "messages")
    assert messages.get_attribute("aria-live") is None
    announcer = page.locator("#announcer")
    expect(announcer).to_have_attribute("aria-live", "polite")
    page.get_by_role("textbox", name="Message", exact=True).fill("Once more")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant .streaming").wait_for()
    # No live region nested inside the messages (it would be read as the answer streams).
    assert page.locator("#messages [aria-live]").count() == 0
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(2, timeout=20000)
    expect(announcer).to_contain_text("Answer finished: ")
    assert not errors, errors


# -- 2: the phone -------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [390, 320])
def test_phone_top_bar_fits_and_the_drawer_closes(browser, server, width):
    page = phone_page(browser, width)
    errors = sign_in(page, server.base)
    first = chat_in_browser(page, server.base, "Phone one")
    chat_in_browser(page, server.base, "Phone two")
    # Nothing is wider than the screen, and every top-bar control is on it.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    controls = page.locator("header.topbar").locator("a, button")
    assert controls.count() >= 6
    for control in controls.all():
        box = control.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, \
            (control.inner_text(), box)
    new_chat = page.get_by_role("link", name="New chat", exact=True)
    expect(new_chat).to_be_visible()

    toggle = page.get_by_role("button", name="Conversations", exact=True)
    drawer = page.locator("#sidebar")
    expect(drawer).to_be_hidden()
    # Open: focus moves into the drawer; Esc closes it and gives the focus back to the toggle.
    toggle.click()
    expect(drawer).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    assert page.evaluate("!!document.activeElement.closest('#sidebar')")
    # Tab goes round the drawer's controls, never to the page behind the backdrop.
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate("!!document.activeElement.closest('#sidebar')")
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("!!document.activeElement.closest('#sidebar')")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(toggle).to_be_focused()
    # A tap beside the drawer closes it (and does not reach the page under it).
    toggle.click()
    expect(drawer).to_be_visible()
    page.touchscreen.tap(width - 10, 420)
    expect(drawer).to_be_hidden()
    expect(toggle).to_be_focused()
    # Choosing a conversation closes it.
    toggle.click()
    drawer.get_by_role("link", name="Phone one").click()
    page.wait_for_url(f"{server.base}/c/{first}")
    expect(drawer).to_be_hidden()
    # The conversation's menus open inside the screen, every control of them in reach.
    for name in ("Rename", "Chat settings", "Share"):
        page.locator("summary", has_text=name).click()
        box = page.locator("details[open] .popover").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5, (name, box)
        page.locator("summary", has_text=name).click()
    # New chat, in the top bar, works from there.
    new_chat.click()
    page.wait_for_url(server.base + "/")
    assert not errors, errors


# -- 3: search as you type ----------------------------------------------------------------------

def test_search_as_you_type_filters_the_sidebar(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Apples <b>and</b> pears")
    chat_in_browser(page, server.base, "Banana bread")
    listing = page.locator("#conversation-list")
    results = page.locator("#search-results")
    search = page.get_by_role("searchbox", name="Search conversations", exact=True)
    search.press_sequentially("pear", delay=60)  # no Enter
    hit = results.locator(".hits a")
    expect(hit).to_have_count(1)
    expect(listing).to_be_hidden()
    # The matched words are marked; the text around them stays text.
    expect(hit.locator("strong mark").first).to_have_text(re.compile("pear", re.I))
    assert "<b>and</b>" in hit.locator("strong").inner_text()
    assert hit.locator("b").count() == 0
    expect(hit.locator(".snippet mark").first).to_have_text(re.compile("pear", re.I))
    # Esc brings the whole list back.
    page.keyboard.press("Escape")
    expect(search).to_have_value("")
    expect(results).to_be_empty()
    expect(listing).to_be_visible()
    assert sidebar_titles(page) == ["Banana bread", "Apples <b>and</b> pears"]
    # So does emptying the box by hand, even with an answer still on its way.
    search.press_sequentially("bread", delay=30)
    expect(results.locator(".hits a")).to_have_count(1)
    for _ in range(5):
        page.keyboard.press("Backspace")
    expect(listing).to_be_visible()
    time.sleep(0.6)  # past the debounce: no late answer hides the list again
    expect(results).to_be_empty()
    expect(listing).to_be_visible()
    search.press_sequentially("nothing-like-it", delay=10)
    expect(results).to_contain_text("Nothing matches")
    assert not errors, errors


def test_search_without_javascript_gives_the_results_page(browser, server):
    page = browser.new_page()
    sign_in(page, server.base)
    chat_in_browser(page, server.base, "Pears in the orchard")
    context = browser.new_context(java_script_enabled=False)
    plain = context.new_page()
    plain.goto(server.base + "/")
    plain.fill("#username", "alice")
    plain.fill("#password", "correct horse")
    plain.click("button[type=submit]")
    plain.wait_for_url(server.base + "/")
    plain.get_by_role("searchbox", name="Search conversations", exact=True).fill("orchard")
    plain.keyboard.press("Enter")
    plain.wait_for_url(f"{server.base}/search?q=orchard")
    expect(plain.locator(".hits a")).to_contain_text("Pears in the orchard")
    expect(plain.locator(".hits mark").first).to_have_text(re.compile("orchard", re.I))
    context.close()


# -- 4: the sidebar follows a turn --------------------------------------------------------------

def stop_running(page):
    """Stop the answer being written with Esc in the composer; wait until it is stopped."""
    stopped = page.locator(".msg-assistant.status-stopped").count()
    wait_streaming(page, page.locator(".msg-assistant").count())
    page.get_by_role("textbox", name="Message", exact=True).focus()
    page.keyboard.press("Escape")
    expect(page.locator(".msg-assistant.status-stopped")).to_have_count(stopped + 1,
                                                                        timeout=10000)


def test_sidebar_follows_a_turn_without_a_reload(browser, endless):
    context = browser.new_context()  # two tabs of one person
    page = context.new_page()
    errors = sign_in(page, endless.base)
    alpha = chat_in_browser(page, endless.base, "Alpha first", wait=False)
    stop_running(page)
    chat_in_browser(page, endless.base, "Beta first", wait=False)
    stop_running(page)
    assert sidebar_titles(page) == ["Beta first", "Alpha first"]
    page.get_by_role("link", name="Alpha first").click()
    page.wait_for_url(f"{endless.base}/c/{alpha}")
    # Sending moves the conversation to the top as the turn starts, marked as running.
    page.get_by_role("textbox", name="Message", exact=True).fill("Alpha again")
    page.keyboard.press("Enter")
    page.locator(".msg-assistant .streaming").wait_for()
    running = "Alpha first (an answer is being written)"
    expect(page.locator("#conversation-list > li > a").first).to_have_text(running)
    expect(page.locator("#conversation-list a[aria-current=page]")).to_have_text(running)
    # A conversation started in another tab meanwhile shows up when this turn ends.
    other = context.new_page()
    chat_in_browser(other, endless.base, "Gamma from another tab", wait=False)
    stop_running(other)
    assert page.locator(".msg-assistant.status-stopped").count() == 1  # still running here
    stop_running(page)
    # (an answer's end touches its conversation too: this one stays on top)
    expect(page.locator("#conversation-list > li > a")).to_have_text(
        ["Alpha first", "Gamma from another tab", "Beta first"])
    expect(page.locator("#conversation-list a[aria-current=page]")).to_have_text("Alpha first")
    context.close()
    assert not errors, errors


# -- 5: the "Chat settings •" mark --------------------------------------------------------------

def test_chat_settings_mark_follows_save_and_reset(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Settings please")
    summary = page.locator("#chat-settings summary")
    expect(summary).to_have_text("Chat settings")
    summary.click()
    page.locator("#chat-settings-form #temperature").fill("1.5")
    page.locator("#chat-settings-form").get_by_role("button", name="Save").click()
    page.get_by_text("Saved. New answers use these settings.").wait_for()
    expect(summary).to_have_text("Chat settings •")
    save = page.locator("#chat-settings-form").get_by_role("button", name="Save")
    expect(save).to_be_focused()  # the form was replaced: the focus stays in the menu
    # A refused value: the focus goes to the field that was refused.
    page.locator("#chat-settings-form #temperature").fill("9")
    save.click()
    expect(page.locator("#chat-settings-form #temperature")).to_be_focused()
    page.locator("#chat-settings-form #temperature").fill("1.5")
    save.click()
    page.get_by_text("Saved. New answers use these settings.").wait_for()
    expect(page.locator("#chat-settings")).to_contain_text("This chat has its own settings.")
    # Back to the defaults without a reload: the mark goes, the form shows the defaults.
    page.get_by_role("button", name="Use my defaults again").click()
    expect(summary).to_have_text("Chat settings")
    expect(page.locator("#chat-settings-form #temperature")).not_to_have_value("1.5")
    expect(page.locator("#chat-settings")).to_contain_text("This chat uses your")
    expect(save).to_be_focused()
    # What the page shows is what is stored.
    page.reload()
    expect(summary).to_have_text("Chat settings")
    # The refused save's 422 is the one error the console may show.
    assert not [e for e in errors if "422" not in e], errors
