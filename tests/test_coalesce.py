"""Coalescing tokens into events, given the time: no threads, no sleeps."""

from __future__ import annotations

import queue

from webapp.streaming import KEEPALIVE, Coalescer
from webapp.streaming.reader import take

EVERY = 0.045  # the shipped STREAM_COALESCE_MS
KEEP = 15.0


def coalescer(now: float = 0.0) -> Coalescer:
    return Coalescer(EVERY, KEEP, now)


def test_the_first_text_goes_out_at_once():
    c = coalescer()
    assert c.add(["Hel", "lo"], 0.2) == ("text", "Hello")
    assert c.due is None


def test_later_tokens_join_one_event_when_it_is_due():
    c = coalescer()
    assert c.add(["a"], 0.0) == ("text", "a")
    assert c.add(["b"], 0.010) is None
    assert c.due == 0.010 + EVERY
    # Tokens that come meanwhile do not move the moment.
    assert c.add(["c", "d"], 0.030) is None
    assert c.due == 0.010 + EVERY
    assert c.add([], 0.010 + EVERY) == ("text", "bcd")
    assert c.due is None


def test_a_token_that_comes_when_the_event_is_due_joins_it():
    c = coalescer()
    c.add(["a"], 0.0)
    c.add(["b"], 0.01)
    assert c.add(["c"], 0.06) == ("text", "bc")


def test_whitespace_alone_is_held_until_text_follows():
    c = coalescer()
    assert c.add(["\n", " "], 0.0) is None  # due at once, but nothing to show
    assert c.due is None
    assert c.add(["x"], 0.02) is None  # no longer the first: it waits its moment
    assert c.add([], 0.02 + EVERY) == ("text", "\n x")


def test_a_keepalive_comes_only_after_a_quiet_interval():
    c = coalescer(100.0)
    assert c.until_keepalive(100.0) == KEEP
    assert c.add([], 100.0 + KEEP - 0.001) is None
    assert c.until_keepalive(100.0 + KEEP - 1) == 1.0
    assert c.add([], 100.0 + KEEP) == KEEPALIVE
    assert c.until_keepalive(100.0 + KEEP) == KEEP  # counted again from the keepalive


def test_text_resets_the_keepalive_interval():
    c = coalescer()
    assert c.add(["a"], 10.0) == ("text", "a")
    assert c.until_keepalive(10.0) == KEEP
    assert c.add([], 10.0 + KEEP - 1) is None


def test_no_keepalive_in_a_wake_up_that_brought_tokens():
    c = coalescer()
    c.add(["a"], 0.0)
    assert c.add(["b"], KEEP + 1) is None  # the tokens wait for their moment instead
    assert c.add([], KEEP + 1 + EVERY) == ("text", "b")


def test_whitespace_that_came_due_postpones_the_keepalive_to_the_next_wake_up():
    c = coalescer()
    c.add(["a"], 0.0)
    c.add([" "], 1.0)
    assert c.add([], KEEP + 1) is None  # the held whitespace was due: no event at all
    assert c.add([], KEEP + 1) == KEEPALIVE


def test_finish_gives_what_is_held_with_the_last_tokens():
    c = coalescer()
    c.add(["a"], 0.0)
    c.add(["b"], 0.01)
    assert c.finish(["c"]) == "bc"
    assert c.finish() is None
    assert c.due is None


def test_finish_drops_whitespace_alone():
    c = coalescer()
    c.add(["a"], 0.0)
    c.add([" \n"], 0.01)
    assert c.finish() is None


def test_a_steady_stream_makes_one_event_per_interval():
    """100 tokens a second for two seconds: the first at once, then one event per interval
    (the moment after a token that found none due), and every token sent once, in order."""
    c = coalescer()
    arrivals = [round(i * 0.01, 3) for i in range(200)]
    sent: list[tuple[float, str]] = []
    for i, at in enumerate(arrivals):
        # The response side wakes at the due moment if it comes before the next token.
        while c.due is not None and c.due < at:
            moment = c.due
            event = c.add([], moment)
            if event:
                sent.append((moment, event[1]))
        event = c.add([f"t{i} "], at)
        if event:
            sent.append((at, event[1]))
    last = c.finish()
    assert "".join(text for _, text in sent) + (last or "") == "".join(
        f"t{i} " for i in range(200))
    moments = [at for at, _ in sent]
    assert moments[0] == 0.0 and sent[0][1] == "t0 "
    gaps = [b - a for a, b in zip(moments, moments[1:], strict=False)]
    assert min(gaps) >= EVERY - 1e-9
    assert 35 <= len(sent) <= 45  # about 2 s / 50 ms


def test_take_returns_everything_queued_in_one_wake_up():
    items: queue.SimpleQueue = queue.SimpleQueue()
    assert take(items, None) == []
    for token in ("a", "b", "c"):
        items.put(token)
    assert take(items, None) == ["a", "b", "c"]
    for token in ("d", "e", "f"):
        items.put(token)
    assert take(items, None, most=2) == ["d", "e"]
    assert take(items, 0.0) == ["f"]
