"""An answer's stream and record: formatted while it streams, cut at the length limit, the
history sent within bounds with the turns left out said, "Reading the conversation…"."""

from __future__ import annotations

import re

import pytest

from tests.helpers import (
    PARTIAL,
    events,
    read_stream,
    replay,
    rows,
    send,
    start_chat,
    wait_until,
)
from webapp.models import Message
from webapp.providers.base import drop_oldest
from webapp.rendering import render_markdown
from webapp.streaming import align_history

BLOCKS = ["Some **bold** ", "words.\n\n", "- one\n", "- two\n\n", "```python\n", "x = 1\n",
          "```\n\n", "| a | b |\n", "|---|---|\n", "| 1 | 2 |\n\n", "![pic](http://e.example/p.png)",
          "\n\nThe ", "*end*."]


def test_finished_blocks_stream_as_sanitized_html_and_join_to_the_final_html(alice, app,
                                                                              scripted):
    scripted.tokens = BLOCKS
    scripted.delay = 0.06  # one event per token
    _, message_id = start_chat(alice)
    data = events(read_stream(alice, message_id))
    (answer,) = rows(app, Message, id=message_id)
    text = "".join(BLOCKS)
    assert answer.content == text and answer.html == str(render_markdown(text))
    sent = [(i, swap, html) for i, item in enumerate(data)
            for _, swap, html in PARTIAL.findall(item)]
    finished = [html for _, swap, html in sent if swap == "beforebegin"]
    # Every block but the last went as HTML while the answer streamed (tokens that come
    # within one event's 45 ms may finish two blocks at once: one piece of HTML for both).
    assert "".join(finished) == answer.html[:answer.html.index("<p>The <em>end")]
    assert finished[0].startswith("<p>Some <strong>bold</strong> words.</p>\n")
    assert len(finished) >= 3
    # ... while the last paragraph still streams as text.
    last_block = max(i for i, swap, _ in sent if swap == "beforebegin")
    assert any(i > last_block and swap == "beforeend" for i, swap, _ in sent)
    # The image is a link, streamed and final.
    assert finished[-1].endswith('<p><a href="http://e.example/p.png" '
                                 'rel="noopener noreferrer nofollow">pic</a></p>\n')
    # What the page was sent, put together, is the final HTML: nothing changes at the end.
    blocks, open_text, _ = replay(data[:-1], message_id)
    assert open_text is None and blocks == answer.html
    assert "<img" not in data[-1]


def test_a_reloaded_page_follows_a_running_answer_with_its_blocks(alice, app, scripted):
    scripted.tokens = BLOCKS
    _, message_id = start_chat(alice)
    read_stream(alice, message_id)
    page = alice.get(f"/m/{message_id}").get_data(as_text=True)
    assert "Reading the conversation" not in page  # finished: no waiting note


def test_the_waiting_note_shows_until_the_first_text(alice, app, scripted):
    scripted.delay = 0.5  # before each token
    conversation_id, message_id = start_chat(alice)
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert f'id="m-{message_id}-wait"' in page and "Reading the conversation…" in page
    assert f'hx-sse:connect="/m/{message_id}/stream?after=0"' in page
    data = events(read_stream(alice, message_id))
    assert PARTIAL.findall(data[0])[0] == (f"m-{message_id}-wait", "delete", "")


def test_a_page_opened_mid_answer_shows_the_text_so_far_and_streams_the_rest(alice, app,
                                                                            scripted):
    scripted.tokens = ["First paragraph.\n\n", "Second ", "one ", "goes ", "on."]
    scripted.delay = 0.3
    conversation_id, message_id = start_chat(alice)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].content.startswith(
        "First paragraph.\n\nSecond"))
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    (saved,) = [m.content for m in rows(app, Message, id=message_id)]
    # The finished block as HTML, the open one as text, and the stream goes on after them.
    assert (f'<p>First paragraph.</p>\n<div class="streaming" id="m-{message_id}-open">'
            f'Second') in page
    assert "Reading the conversation" not in page
    (after,) = re.findall(rf'/m/{message_id}/stream\?after=(\d+)"', page)
    assert int(after) >= len("First paragraph.\n\nSecond ")
    data = events(alice.get(f"/m/{message_id}/stream?after={after}").get_data(as_text=True))
    streamed = "".join(text for item in data[:-2]
                       for target, swap, text in PARTIAL.findall(item) if swap == "beforeend")
    assert saved[:int(after)] + streamed == "".join(scripted.tokens)


def test_an_answer_cut_at_the_length_limit_says_so(alice, app, scripted):
    scripted.finish_reason = "length"
    conversation_id, message_id = start_chat(alice)
    final = events(read_stream(alice, message_id))[-1]
    assert "Cut at the length limit." in final
    (answer,) = rows(app, Message, id=message_id)
    assert (answer.status, answer.finish_reason) == ("complete", "length")
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "Cut at the length limit." in page and "cut at the length limit</dd>" in page


def test_an_answer_that_finished_by_itself_has_no_mark(alice, app, scripted):
    scripted.finish_reason = "stop"
    conversation_id, message_id = start_chat(alice)
    final = events(read_stream(alice, message_id))[-1]
    (answer,) = rows(app, Message, id=message_id)
    assert answer.finish_reason == "stop"
    assert "Cut at the length limit" not in final
    assert "Cut at the length limit" not in alice.get(f"/c/{conversation_id}").get_data(
        as_text=True)


def test_a_stopped_answer_is_not_marked_cut(alice, app, scripted):
    scripted.finish_reason = "length"
    scripted.fail_with = RuntimeError("boom")
    _, message_id = start_chat(alice)
    read_stream(alice, message_id)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "error" and answer.finish_reason is None


def turns(alice, conversation_id, count):
    """``count`` turns, each read to its end."""
    for i in range(count):
        read_stream(alice, send(alice, conversation_id, f"turn {i}"))


def test_turns_left_out_of_the_history_are_counted_in_the_details(alice, app, scripted):
    app.config["MAX_HISTORY_MESSAGES"] = 20
    conversation_id, first = start_chat(alice, "first question")
    read_stream(alice, first)
    turns(alice, conversation_id, 13)
    answers = [m for m in rows(app, Message, conversation_id=conversation_id)
               if m.role == "assistant"]
    # The last answer had 27 earlier messages: the bounds let the latest 20 through, and 7
    # left out become 8 (by steps of 8, so that the next turns start the same way and a
    # model server can reuse what it read).
    assert len(scripted.calls[-1]["messages"]) == 19
    assert answers[-1].history_skipped == 8
    # The one before had 25: 5 left out become 8.
    assert len(scripted.calls[-2]["messages"]) == 17 and answers[-2].history_skipped == 8
    assert len(scripted.calls[-3]["messages"]) == 15 and answers[-3].history_skipped == 8
    page = alice.get(f"/c/{conversation_id}").get_data(as_text=True)
    assert "<dt>turns left out</dt><dd>8 earlier" in page
    # A short conversation leaves nothing out, and says nothing about it.
    assert answers[0].history_skipped == 0
    assert page.count("<dt>turns left out</dt>") == 4  # from the 11th answer on (21 earlier)


def test_turns_the_provider_drops_for_its_context_window_are_counted(alice, app, scripted):
    @classmethod
    def fit_history(cls, messages, params):
        return drop_oldest(messages, [len(m["content"]) for m in messages], 20)

    scripted.fit_history = fit_history
    conversation_id, first = start_chat(alice, "first question")
    read_stream(alice, first)
    turns(alice, conversation_id, 1)
    answer = rows(app, Message, conversation_id=conversation_id)[-1]
    assert scripted.calls[-1]["messages"] == [{"role": "user", "content": "turn 0"}]
    assert answer.history_skipped == 2


SYSTEM = {"role": "system", "content": "be brief"}


def chat(n):
    return [{"role": ("user", "assistant")[i % 2], "content": f"m{i}"} for i in range(n)]


@pytest.mark.parametrize(("messages", "costs", "budget", "kept", "dropped"), [
    ([SYSTEM, *chat(5)], [3, 10, 10, 10, 10, 10], 33, [SYSTEM, *chat(5)[2:]], 2),
    ([SYSTEM, *chat(5)], [3, 10, 10, 10, 10, 10], 32, [SYSTEM, *chat(5)[3:]], 3),
    ([SYSTEM, *chat(5)], [3, 10, 10, 10, 10, 10], 100, [SYSTEM, *chat(5)], 0),
    (chat(4), [10, 10, 10, 10], 25, chat(4)[2:], 2),
    # The system prompt and the newest message stay even when they alone are too many.
    ([SYSTEM, *chat(3)], [50, 10, 10, 60], 20, [SYSTEM, chat(3)[-1]], 2),
    ([*chat(1)], [99], 1, chat(1), 0),
    ([], [], 0, [], 0),
])
def test_drop_oldest_keeps_the_system_prompt_and_the_newest(messages, costs, budget, kept,
                                                            dropped):
    assert drop_oldest(messages, costs, budget) == (kept, dropped)


def test_a_cut_history_is_cut_by_steps_so_its_start_stays_for_the_next_turns():
    conversation = [*chat(60)]
    starts = []
    for n in range(40, 61, 2):  # the conversation grows a question and an answer at a time
        latest = conversation[n - 32:n]  # what the bounds let through: the latest 32
        kept, skipped = align_history([SYSTEM, *latest], n - 32, step=8)
        assert kept[0] == SYSTEM and kept[-1] == conversation[n - 1] and skipped % 8 == 0
        assert kept[1:] == conversation[skipped:n]
        starts.append(kept[1]["content"])
    # The oldest message sent changes once every 4 turns, not at every turn.
    assert sum(a != b for a, b in zip(starts[:-1], starts[1:], strict=True)) == 3
    # Nothing cut: nothing more is; never more than a quarter of what is sent.
    assert align_history([SYSTEM, *chat(3)], 0) == ([SYSTEM, *chat(3)], 0)
    assert align_history([SYSTEM, *chat(3)], 1, step=8) == ([SYSTEM, *chat(3)], 1)
    assert align_history(chat(10), 6, step=8) == (chat(10)[2:], 8)
    assert align_history(chat(9), 6, step=8) == (chat(9), 6)
