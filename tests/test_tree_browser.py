"""Conversations as trees in a real browser against gunicorn: Regenerate, Edit, Continue and
Previous/Next version, with JavaScript and without. The upstream (the fault server's ``tree``
scenario) answers each request differently ("Answer N to <message>.") and records what it was
sent, so the versions can be told apart and the history each branch sends can be read.
Controls are found by role and accessible name."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.helpers import chat_in_browser, serve, sign_in

pytestmark = pytest.mark.browser

#: Long enough for an answer to stream and its final state to be swapped in on a busy machine.
WAIT = 20000


@pytest.fixture(scope="module")
def server(tmp_path_factory, fault_server):
    """gunicorn with alice, Equing at the ``tree`` scenario, limits high enough for a module
    of tests signing in and sending again and again."""
    app = serve(tmp_path_factory.mktemp("tree"), fault_server, "tree",
                FLASK_MESSAGE_RATE_LIMIT="1000 per minute",
                FLASK_LOGIN_RATE_LIMIT="1000 per minute", FLASK_STREAMS_PER_USER="20")
    yield app
    app.stop()


@pytest.fixture()
def page(browser, server):
    """A signed-in page of a context of its own; the test fails on any script error."""
    context = browser.new_context()
    page = context.new_page()
    errors = sign_in(page, server.base)
    yield page
    context.close()
    assert not errors, errors


def sent(fault_server, first):
    """What the upstream was sent, request by request, in the conversation that began with
    ``first``: each a list of (role, content)."""
    found = []
    for request in fault_server.requests:
        messages = (request["body"] or {}).get("messages") or []
        users = [m["content"] for m in messages if m.get("role") == "user"]
        if request["scenario"] == "tree" and users and users[0] == first:
            found.append([(m["role"], m["content"]) for m in messages])
    return found


def answers(page):
    return page.locator("#messages .msg-assistant")


def user_messages(page):
    return page.locator("#messages .msg-user")


def body(message):
    return message.locator(".msg-body")


def count(message):
    return message.locator(".version-count")


def done(page):
    """Wait until no answer on the page is being written."""
    expect(page.locator('#messages .msg-assistant[data-status="streaming"]')).to_have_count(
        0, timeout=WAIT)


def send(page, text, answered):
    """Send ``text`` from the composer and wait until ``answered`` answers are complete."""
    box = page.get_by_role("textbox", name="Message", exact=True)
    box.fill(text)
    box.press("Enter")
    expect(page.locator("#messages .msg-assistant.status-complete")).to_have_count(
        answered, timeout=WAIT)


def edit(page, message, text):
    """Open ``message``'s edit form and put ``text`` in it; the form's text box."""
    message.get_by_role("button", name="Edit").click()
    box = page.get_by_role("textbox", name="Edit your message")
    box.fill(text)
    return box


def test_regenerate_then_previous_version_is_kept_across_reloads_and_tabs(page, server):
    conversation = chat_in_browser(page, server.base, "Regenerate me")
    answer = answers(page).last
    first = body(answer).inner_text()
    assert "to Regenerate me." in first
    answer.get_by_role("button", name="Regenerate").click()
    expect(count(answers(page).last)).to_have_text("2 / 2", timeout=WAIT)
    done(page)  # a new version shows its place while it is written
    expect(answers(page)).to_have_count(1)
    second = body(answers(page).last).inner_text()
    assert "to Regenerate me." in second and second != first

    answers(page).last.get_by_role("button", name="Previous version").click()
    expect(count(answers(page).last)).to_have_text("1 / 2")
    expect(body(answers(page).last)).to_have_text(first)
    # The choice is the server's: a reload and another tab show the same version.
    page.reload()
    expect(count(answers(page).last)).to_have_text("1 / 2")
    expect(body(answers(page).last)).to_have_text(first)
    other = page.context.new_page()
    other.goto(f"{server.base}/c/{conversation}")
    expect(count(answers(other).last)).to_have_text("1 / 2")
    expect(body(answers(other).last)).to_have_text(first)
    answers(page).last.get_by_role("button", name="Next version").click()
    expect(body(answers(page).last)).to_have_text(second)


def test_enter_in_the_edit_form_sends_it(page, server):
    chat_in_browser(page, server.base, "Edit me with Enter")
    edit(page, user_messages(page).last, "Edited with Enter").press("Enter")
    expect(count(user_messages(page).last)).to_have_text("2 / 2", timeout=WAIT)
    expect(body(user_messages(page).last)).to_have_text("Edited with Enter")
    expect(body(answers(page).last)).to_contain_text("to Edited with Enter.", timeout=WAIT)


def test_escape_in_the_edit_form_cancels_it(page, server):
    chat_in_browser(page, server.base, "Edit me then Escape")
    edit(page, user_messages(page).last, "Never sent").press("Escape")
    expect(page.get_by_role("textbox", name="Edit your message")).to_have_count(0)
    expect(body(user_messages(page).last)).to_have_text("Edit me then Escape")


def test_edit_makes_a_branch_and_previous_version_brings_the_old_one_back(page, server):
    chat_in_browser(page, server.base, "Edit me")
    old_answer = body(answers(page).last).inner_text()
    edit(page, user_messages(page).last, "Edited question")
    page.get_by_role("button", name="Save and send").click()
    expect(count(user_messages(page).last)).to_have_text("2 / 2", timeout=WAIT)
    expect(body(answers(page).last)).to_contain_text("to Edited question.", timeout=WAIT)
    expect(page.locator("#messages .msg-assistant.status-complete")).to_have_count(1)

    user_messages(page).last.get_by_role("button", name="Previous version").click()
    expect(count(user_messages(page).last)).to_have_text("1 / 2")
    expect(body(user_messages(page).last)).to_have_text("Edit me")
    expect(body(answers(page).last)).to_have_text(old_answer)


def test_cancel_leaves_the_message_as_it_was(page, server):
    chat_in_browser(page, server.base, "Do not change me")
    edit(page, user_messages(page).last, "Changed my mind")
    page.get_by_role("link", name="Cancel").click()
    expect(body(user_messages(page).last)).to_have_text("Do not change me")
    expect(page.get_by_role("textbox", name="Edit your message")).to_have_count(0)
    expect(count(user_messages(page).last)).to_have_count(0)


def test_the_upstream_is_sent_the_branch_shown(page, server, fault_server):
    chat_in_browser(page, server.base, "Turn one")
    send(page, "Turn two", 2)
    send(page, "Turn three", 3)
    said = [body(answers(page).nth(i)).inner_text() for i in range(3)]

    # Turn two edited: the upstream gets turn one and the edited message, nothing after.
    edit(page, user_messages(page).nth(1), "Turn two, edited")
    page.get_by_role("button", name="Save and send").click()
    expect(count(user_messages(page).nth(1))).to_have_text("2 / 2", timeout=WAIT)
    expect(page.locator("#messages .msg-assistant.status-complete")).to_have_count(2,
                                                                                    timeout=WAIT)
    assert sent(fault_server, "Turn one")[-1] == [
        ("user", "Turn one"), ("assistant", said[0]), ("user", "Turn two, edited")]

    # Back to the old branch, and on from its end: the upstream gets that branch.
    user_messages(page).nth(1).get_by_role("button", name="Previous version").click()
    expect(user_messages(page)).to_have_count(3)
    expect(body(user_messages(page).nth(2))).to_have_text("Turn three")
    send(page, "Turn four", 4)
    assert sent(fault_server, "Turn one")[-1] == [
        ("user", "Turn one"), ("assistant", said[0]), ("user", "Turn two"),
        ("assistant", said[1]), ("user", "Turn three"), ("assistant", said[2]),
        ("user", "Turn four")]


def test_regenerating_an_earlier_answer_hides_the_turns_after_it_until_chosen_back(page,
                                                                                  server):
    chat_in_browser(page, server.base, "Early turn")
    send(page, "Later turn", 2)
    early = body(answers(page).first).inner_text()
    answers(page).first.get_by_role("button", name="Regenerate").click()
    # The new version starts a branch of its own: the later turn is on the other one.
    expect(count(answers(page).first)).to_have_text("2 / 2", timeout=WAIT)
    done(page)  # a new version shows its place while it is written
    expect(user_messages(page)).to_have_count(1)
    assert body(answers(page).first).inner_text() != early
    answers(page).first.get_by_role("button", name="Previous version").click()
    expect(user_messages(page)).to_have_count(2)
    expect(body(answers(page).first)).to_have_text(early)
    expect(body(user_messages(page).last)).to_have_text("Later turn")


def test_a_search_hit_in_another_version_opens_that_version(page, server):
    conversation = chat_in_browser(page, server.base, "Find my first answer")
    first = body(answers(page).last).inner_text()
    answers(page).last.get_by_role("button", name="Regenerate").click()
    expect(count(answers(page).last)).to_have_text("2 / 2", timeout=WAIT)
    done(page)  # a new version shows its place while it is written
    number = first.split()[1]  # "Answer N to …": N is this version's alone
    page.goto(f"{server.base}/search?q=Answer+{number}+to")
    hit = page.locator(".hits a")
    expect(hit).to_have_count(1)
    assert f"/c/{conversation}" in hit.get_attribute("href")
    hit.click()
    # The page opened from the hit shows the text that was found.
    expect(body(answers(page).last)).to_have_text(first)
    expect(count(answers(page).last)).to_have_text("1 / 2")


def test_continue_a_stopped_answer_goes_on_in_the_same_article(page, server, fault_server):
    chat_in_browser(page, server.base, "Be slow please", wait=False)
    expect(answers(page).last.locator(".streaming")).to_contain_text("s3 ", timeout=WAIT)
    page.get_by_role("button", name="Stop").click()
    stopped = page.locator("#messages .msg-assistant.status-stopped")
    stopped.wait_for(timeout=WAIT)
    article = stopped.get_attribute("id")
    before = body(stopped).inner_text().strip()
    assert before.startswith("s0 s1 s2 s3")

    stopped.get_by_role("button", name="Continue").click()
    done = page.locator("#messages .msg-assistant.status-complete")
    done.wait_for(timeout=WAIT)
    assert done.get_attribute("id") == article
    expect(answers(page)).to_have_count(1)
    after = body(done).inner_text().strip()
    assert after.startswith(before) and after.endswith("and the rest.")
    assert "Stopped." not in done.inner_text()
    # The upstream was asked to go on from the text so far, after the same question.
    asked = sent(fault_server, "Be slow please")[-1]
    assert asked[:-1] == [("user", "Be slow please")]
    assert asked[-1][0] == "assistant" and asked[-1][1].strip() == before
    page.reload()
    expect(body(answers(page).last)).to_have_text(after)


def test_continue_an_answer_cut_at_its_length(page, server, fault_server):
    chat_in_browser(page, server.base, "Please cut this")
    cut = answers(page).last
    expect(cut.locator(".msg-cut")).to_have_text("Cut at the length limit.")
    before = body(cut).inner_text().strip()
    cut.get_by_role("button", name="Continue").click()
    expect(body(answers(page).last)).to_contain_text("and the rest.", timeout=WAIT)
    done = page.locator("#messages .msg-assistant.status-complete")
    done.wait_for(timeout=WAIT)
    expect(answers(page)).to_have_count(1)
    assert body(done).inner_text().strip() == before + " and the rest."
    expect(done.locator(".msg-cut")).to_have_count(0)
    expect(done.get_by_role("button", name="Continue")).to_have_count(0)
    assert sent(fault_server, "Please cut this")[-1] == [
        ("user", "Please cut this"), ("assistant", before)]


def test_without_javascript_every_control_is_a_plain_form(browser, server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, server.base)
    page.get_by_role("textbox", name="Message", exact=True).fill("No script here")
    page.get_by_role("button", name="Send").click()
    # The page refreshes itself until the answer is done.
    complete = page.locator("#messages .msg-assistant.status-complete")
    complete.wait_for(timeout=WAIT)
    first = body(complete).inner_text()

    complete.get_by_role("button", name="Regenerate").click()
    expect(count(answers(page).last)).to_have_text("2 / 2", timeout=WAIT)
    done(page)  # a new version shows its place while it is written
    second = body(answers(page).last).inner_text()
    assert second != first and "to No script here." in second
    answers(page).last.get_by_role("button", name="Previous version").click()
    expect(count(answers(page).last)).to_have_text("1 / 2")
    expect(body(answers(page).last)).to_have_text(first)
    answers(page).last.get_by_role("button", name="Next version").click()
    expect(body(answers(page).last)).to_have_text(second)

    edit(page, user_messages(page).last, "No script, edited")
    page.get_by_role("button", name="Save and send").click()
    expect(count(user_messages(page).last)).to_have_text("2 / 2", timeout=WAIT)
    expect(body(answers(page).last)).to_contain_text("to No script, edited.", timeout=WAIT)
    user_messages(page).last.get_by_role("button", name="Previous version").click()
    expect(body(user_messages(page).last)).to_have_text("No script here")
    expect(count(answers(page).last)).to_have_text("2 / 2")
    expect(body(answers(page).last)).to_have_text(second)
    context.close()


def test_the_version_buttons_keep_the_keyboard_focus(page, server):
    """With the keyboard alone: the focus stays on the version button just pressed (the
    messages are replaced under it), so the versions can be paged through with Enter."""
    chat_in_browser(page, server.base, "Page through me")
    for total in ("2 / 2", "3 / 3"):
        answers(page).last.get_by_role("button", name="Regenerate").click()
        expect(count(answers(page).last)).to_have_text(total, timeout=WAIT)
        done(page)
    previous = answers(page).last.get_by_role("button", name="Previous version")
    previous.focus()
    page.keyboard.press("Enter")
    expect(count(answers(page).last)).to_have_text("2 / 3")
    expect(answers(page).last.get_by_role("button", name="Previous version")).to_be_focused()
    page.keyboard.press("Enter")
    expect(count(answers(page).last)).to_have_text("1 / 3")
    # At the first version "Previous version" is disabled: the focus goes to the next control.
    expect(answers(page).last.get_by_role("button", name="Next version")).to_be_focused()
