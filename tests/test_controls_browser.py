"""The controls JavaScript adds (issue 17, static/js/controls.js), in a real browser against
gunicorn: Copy on a message and on a code block (with the Clipboard API, and with the copy
command where the API is refused), the keyboard shortcuts and their dialog, the edit box's
keys, a finished answer read out once through a live region, and visible focus rings.
Controls are found by accessible name."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.helpers import chat_in_browser, serve, sign_in
from tests.peers.fault_upstream import MARKDOWN_TOKENS

pytestmark = pytest.mark.browser

#: The slow-markdown scenario's answer as its markdown source, and its one code block.
MARKDOWN = "".join(MARKDOWN_TOKENS)
CODE = "print('hi')"


@pytest.fixture()
def endless(tmp_path, fault_server):
    """The app whose answers stream a token every 20 ms for 20 s: always one running."""
    app = serve(tmp_path, fault_server, "endless")
    yield app
    app.stop()


def clipboard_context(browser, base):
    """A browser context that lets the page read and write the clipboard."""
    return browser.new_context(permissions=["clipboard-read", "clipboard-write"], base_url=base)


def read_clipboard(page):
    return page.evaluate("navigator.clipboard.readText()")


def paste(page):
    """What Ctrl+V pastes into a fresh textarea (the clipboard, without the Clipboard API)."""
    page.evaluate("""() => {
        const area = document.createElement('textarea');
        area.id = 'paste-here';
        document.body.append(area);
        area.focus();
    }""")
    page.keyboard.press("Control+V")
    value = page.locator("#paste-here").input_value()
    page.evaluate("document.getElementById('paste-here').remove()")
    return value


def answer(page, n=-1):
    return page.locator("#messages .msg-assistant").nth(n)


def announced(page):
    return page.locator("#announcer")


# -- Copy -----------------------------------------------------------------------------------------

def test_copy_a_message_and_a_code_block_with_the_clipboard_api(browser, server):
    context = clipboard_context(browser, server.base)
    page = context.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Show me *some* markdown")
    # The server sends no Copy button: a page without JavaScript shows none.
    assert 'class="copy' not in context.request.get(page.url).text()

    answer_copy = answer(page).locator(".msg-tools").get_by_role("button", name="Copy", exact=True)
    answer_copy.click()
    expect(answer(page).locator(".msg-tools .copy-message")).to_have_text("Copied")
    expect(announced(page)).to_have_text("Copied")
    assert read_clipboard(page) == MARKDOWN
    # It goes back to "Copy" by itself.
    expect(answer_copy).to_have_text("Copy")

    block = answer(page).locator(".code-block")
    expect(block).to_have_count(1)
    expect(block.locator(".code-lang")).to_have_text("python")
    block.get_by_role("button", name="Copy", exact=True).click()
    expect(block.locator("button.copy-code")).to_have_text("Copied")
    assert read_clipboard(page) == CODE

    # The person's message copies its text as typed.
    page.locator("#messages .msg-user").get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#messages .msg-user .copy-message")).to_have_text("Copied")
    assert read_clipboard(page) == "Show me *some* markdown"
    # Each finished message has exactly one Copy in its toolbar, next to its other tools.
    expect(page.locator("#messages .msg-tools .copy-message")).to_have_count(2)
    user_tools = page.locator("#messages .msg-user .msg-tools")
    expect(user_tools.get_by_role("button", name="Edit")).to_be_visible()
    context.close()
    assert not errors, errors


def test_copy_falls_back_to_the_copy_command_where_the_clipboard_api_is_refused(browser, server):
    context = browser.new_context(base_url=server.base)
    page = context.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Code please")
    # Refused for this context (Playwright's own permissions can only grant).
    cdp = context.new_cdp_session(page)
    context_id = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    cdp.send("Browser.setPermission", {"permission": {"name": "clipboard-write"},
                                       "setting": "denied", "origin": server.base,
                                       "browserContextId": context_id})
    refused = page.evaluate("navigator.clipboard.writeText('x').then(() => 'written', e => e.name)")
    assert refused == "NotAllowedError"

    answer(page).locator(".msg-tools").get_by_role("button", name="Copy", exact=True).click()
    expect(answer(page).locator(".copy-message")).to_have_text("Copied")
    assert paste(page) == MARKDOWN
    answer(page).locator(".code-block").get_by_role("button", name="Copy", exact=True).click()
    expect(answer(page).locator(".copy-code")).to_have_text("Copied")
    assert paste(page) == CODE
    # The hidden textarea is gone again.
    expect(page.locator(".copy-buffer")).to_have_count(0)
    context.close()
    assert not errors, errors


def test_copy_without_the_clipboard_api(browser, server):
    """A page served over plain http to another machine has no navigator.clipboard at all."""
    context = browser.new_context(base_url=server.base)
    context.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', "
                            "{get: () => undefined})")
    page = context.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "No clipboard here")
    assert page.evaluate("navigator.clipboard") is None
    answer(page).locator(".code-block").get_by_role("button", name="Copy", exact=True).click()
    expect(answer(page).locator(".copy-code")).to_have_text("Copied")
    assert paste(page) == CODE
    context.close()
    assert not errors, errors


def test_copy_on_a_shared_snapshot(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Share and copy")
    page.click("#share summary")
    page.click("#share button[type=submit]")
    link = page.locator(".share-link").input_value()
    stranger = clipboard_context(browser, server.base)  # no session: a reader without an account
    reader = stranger.new_page()
    reader.on("pageerror", lambda exc: errors.append(str(exc)))
    reader.goto(link)
    shared = reader.locator(".msg-assistant")
    # A snapshot's messages have no toolbar of their own: Copy gets one, above the details.
    expect(shared.locator(".msg-tools + p.msg-info")).to_have_count(1)
    shared.locator(".msg-tools").get_by_role("button", name="Copy", exact=True).click()
    expect(shared.locator(".copy-message")).to_have_text("Copied")
    assert read_clipboard(reader) == MARKDOWN
    shared.locator(".code-block").get_by_role("button", name="Copy", exact=True).click()
    expect(shared.locator(".copy-code")).to_have_text("Copied")
    assert read_clipboard(reader) == CODE
    reader.locator(".msg-user").get_by_role("button", name="Copy", exact=True).click()
    expect(reader.locator(".msg-user .copy-message")).to_have_text("Copied")
    assert read_clipboard(reader) == "Share and copy"
    stranger.close()
    assert not errors, errors


# -- Keyboard shortcuts -------------------------------------------------------------------------

def test_question_mark_opens_the_shortcuts_dialog_and_esc_closes_it(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(dialog).to_be_hidden()
    # "?" in the message box is a question mark, not a shortcut.
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.focus()
    page.keyboard.type("?")
    expect(box).to_have_value("?")
    expect(dialog).to_be_hidden()
    box.fill("")
    page.locator("body").focus()
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("?")
    expect(dialog).to_be_visible()
    for action in ("New chat", "Focus the message box", "Stop the answer being written",
                   "Copy the last answer", "Edit your last message"):
        expect(dialog).to_contain_text(action)
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    # The visible button opens it too, and Close closes it.
    page.get_by_role("button", name="Keyboard shortcuts", exact=True).click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Close", exact=True).click()
    expect(dialog).to_be_hidden()
    # Ctrl+/ works from the message box.
    box.focus()
    page.keyboard.press("Control+/")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert not errors, errors


def test_new_chat_focus_composer_and_copy_last_answer(browser, server):
    context = clipboard_context(browser, server.base)
    page = context.new_page()
    errors = sign_in(page, server.base)
    conversation = chat_in_browser(page, server.base, "First question")
    box = page.get_by_role("textbox", name="Message", exact=True)
    # Shift+Esc: to the message box, from anywhere.
    page.get_by_role("button", name="Regenerate").focus()
    page.keyboard.press("Shift+Escape")
    expect(box).to_be_focused()
    # Ctrl+Shift+C copies the last answer, from the message box too; its Copy says so.
    page.keyboard.press("Control+Shift+C")
    expect(answer(page).locator(".copy-message")).to_have_text("Copied")
    assert read_clipboard(page) == MARKDOWN
    # Ctrl+Shift+O: a new chat.
    page.keyboard.press("Control+Shift+O")
    page.wait_for_url(server.base + "/")
    expect(page.locator(".welcome")).to_be_visible()
    assert page.url != f"{server.base}/c/{conversation}"
    context.close()
    assert not errors, errors


def test_esc_outside_a_field_stops_the_answer_and_it_is_read_out(browser, endless):
    page = browser.new_page()
    errors = sign_in(page, endless.base)
    chat_in_browser(page, endless.base, "Go on for ever", wait=False)
    answer(page).locator(".streaming").filter(has_text=re.compile(r"t\d")).wait_for()
    page.evaluate("document.activeElement.blur()")
    page.keyboard.press("Escape")
    expect(page.locator(".msg-assistant.status-stopped")).to_have_count(1, timeout=10000)
    expect(announced(page)).to_contain_text(re.compile(r"^Answer stopped: t0 t1 "))
    assert [e for e in errors if "status of 409" not in e] == [], errors


def test_up_arrow_edits_the_last_message_and_the_edit_box_keys(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Original question")
    box = page.get_by_role("textbox", name="Message", exact=True)
    # Up in a message box with text moves the caret, nothing more.
    box.fill("draft")
    box.press("ArrowUp")
    expect(page.locator("form.edit-form")).to_have_count(0)
    box.fill("")
    box.press("ArrowUp")
    edit = page.get_by_role("textbox", name="Edit your message")
    expect(edit).to_be_focused()
    expect(edit).to_have_value("Original question")
    # Esc cancels: the message is back, with its Edit button.
    page.keyboard.press("Escape")
    expect(page.locator("form.edit-form")).to_have_count(0)
    expect(page.locator("#messages .msg-user .msg-body")).to_have_text("Original question")
    # Again; Shift+Enter is a new line, Enter saves and sends.
    box.focus()
    page.keyboard.press("ArrowUp")
    expect(edit).to_be_focused()
    page.keyboard.type(" changed")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("second line")
    expect(edit).to_have_value("Original question changed\nsecond line")
    page.keyboard.press("Enter")
    expect(page.locator("form.edit-form")).to_have_count(0)
    expect(page.locator("#messages .msg-user .msg-body")).to_have_text(
        "Original question changed\nsecond line")
    expect(page.locator("#messages .msg-user .version-count")).to_have_text("2 / 2")
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(1, timeout=20000)
    assert not errors, errors


# -- The live region ----------------------------------------------------------------------------

def test_a_finished_answer_is_read_out_once_not_token_by_token(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "One")
    messages = page.locator("#messages")
    # The messages are not a live region: they would be read token by token.
    assert messages.get_attribute("aria-live") in (None, "off")
    assert messages.get_attribute("role") != "log"
    region = announced(page)
    expect(region).to_have_attribute("aria-live", "polite")
    assert page.locator("#messages [aria-live]").count() == 0
    # An answer already finished when the page loads is not read out.
    page.reload()
    expect(region).to_have_text("")
    page.get_by_role("textbox", name="Message", exact=True).fill("Two")
    page.keyboard.press("Enter")
    answer(page, 1).locator(".streaming").wait_for()
    expect(region).to_have_text("")  # nothing while it is written
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(2, timeout=20000)
    expect(region).to_have_text("Answer finished: Here is bold text and a list: one two "
                                "print('hi') Done <b>x</b>.")
    assert not errors, errors


# -- Focus rings and narrow screens -------------------------------------------------------------

def ring(locator):
    """The focused control's outline and box shadow."""
    return locator.evaluate("""el => {
        const style = getComputedStyle(el);
        return {focused: el.matches(':focus-visible'), outline: style.outlineStyle,
                width: parseFloat(style.outlineWidth), shadow: style.boxShadow};
    }""")


def test_every_control_shows_a_focus_ring(browser, server):
    page = browser.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "Rings")
    page.get_by_role("textbox", name="Message", exact=True).focus()
    page.keyboard.press("Shift+Tab")  # a keyboard move: what follows shows :focus-visible
    controls = [
        answer(page).locator(".msg-tools").get_by_role("button", name="Copy", exact=True),
        answer(page).get_by_role("button", name="Regenerate"),
        answer(page).locator(".code-block").get_by_role("button", name="Copy", exact=True),
        page.locator("#messages .msg-user").get_by_role("button", name="Edit"),
        page.get_by_role("button", name="Send", exact=True),
        page.get_by_role("button", name="Keyboard shortcuts", exact=True),
        page.get_by_role("link", name="New chat"),
        answer(page).locator("details.msg-info summary"),
        page.get_by_role("textbox", name="Message", exact=True),
    ]
    for control in controls:
        control.focus()
        style = ring(control)
        assert style["focused"], control
        assert (style["outline"] != "none" and style["width"] > 0) or style["shadow"] != "none", \
            (control, style)
    assert not errors, errors


def test_message_tools_fit_a_phone(browser, server):
    context = browser.new_context(viewport={"width": 320, "height": 640}, is_mobile=True,
                                  has_touch=True)
    page = context.new_page()
    errors = sign_in(page, server.base)
    chat_in_browser(page, server.base, "A phone")
    page.get_by_role("textbox", name="Message", exact=True).fill("Again")
    page.keyboard.press("Enter")
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(2, timeout=20000)
    answer(page, 0).get_by_role("button", name="Regenerate").click()
    expect(page.locator("#messages .version-count").first).to_have_text("2 / 2", timeout=20000)
    expect(page.locator(".msg-assistant.status-complete")).to_have_count(1, timeout=20000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 320
    for tool in page.locator("#messages .msg-tools button").all():
        box = tool.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 320, box
        assert box["height"] >= 24, box  # a finger's target (WCAG 2.5.8)
    context.close()
    assert not errors, errors
