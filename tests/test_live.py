"""An answer's life apart from any page: its ``Live`` and listeners, the follower that reads it
from another process's saves, the saver's flags, the time limit."""

from __future__ import annotations

import threading
from datetime import timedelta

from tests.helpers import events, read_stream, rows, start_chat, wait_until
from webapp.extensions import db
from webapp.models import Message, utcnow
from webapp.streaming import Follower, Listener, Live, lives, stops
from webapp.streaming.ending import over_time


def test_a_live_answer_hands_each_listener_the_text_after_its_offset():
    live = Live(1)
    live.publish("Hello")
    assert live.wait(0, 0.01) == ("Hello", False)
    assert live.wait(2, 0.01) == ("llo", False)
    assert live.wait(5, 0.01) == ("", False)  # nothing new: the wait ran out
    got = []
    waiter = threading.Thread(target=lambda: got.append(live.wait(5, 5)))
    waiter.start()
    live.publish(" world")
    waiter.join(5)
    assert got == [(" world", False)]
    live.end()
    assert live.wait(11, 5) == ("", True)


def test_catching_up_only_moves_forward():
    live = Live(1, "abc")
    live.catch_up("ab")  # an older save read late
    assert live.text == "abc"
    live.catch_up("abcdef")
    assert live.text == "abcdef"


def test_listeners_of_one_answer_each_get_it_whole_from_where_they_start(alice, app, scripted):
    scripted.tokens = [f"w{i} " for i in range(20)]
    scripted.delay = 0.02
    _, message_id = start_chat(alice)
    live = lives.get(message_id)
    assert live is not None  # generated here, so listened to here
    results: dict[int, str] = {}

    def listen(after: int) -> None:
        listener = Listener(app, message_id, after)
        text = live.text[:after]
        for piece in listener:
            if piece is not None:
                start, chunk = piece
                assert start == len(text)  # no gap, no overlap
                text += chunk
        listener.close()
        results[after] = text

    readers = [threading.Thread(target=listen, args=(after,)) for after in (0, 0, 3)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(10)
    whole = "".join(scripted.tokens)
    assert results == {0: whole, 3: whole}


def test_the_follower_feeds_a_page_from_the_saved_text_and_marks_it_followed(alice, app,
                                                                              scripted):
    """What another process's page sees: an answer generated elsewhere is read from the
    database; while followed it is marked so, and its generator saves it often."""
    scripted.tokens = [f"w{i} " for i in range(30)]
    scripted.delay = 0.03
    _, message_id = start_chat(alice)
    follower = Follower(app)  # a second process's follower, beside this one's generation
    live = follower.attach(message_id)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].followed_until is not None)
    assert wait_until(lambda: live.ended, seconds=10)
    assert live.text == "".join(scripted.tokens)
    follower.detach(live)
    assert wait_until(lambda: follower._thread is None)  # nothing left to follow: it stops


def test_the_follower_ends_an_answer_whose_process_died(alice, app, scripted):
    _, message_id = start_chat(alice)
    read_stream(alice, message_id)
    with app.app_context():
        answer = db.session.get(Message, message_id)
        answer.status, answer.content = "streaming", "half"
        answer.updated_at = utcnow() - timedelta(seconds=60)
        db.session.commit()
    follower = Follower(app)
    live = follower.attach(message_id)
    assert wait_until(lambda: live.ended)
    follower.detach(live)
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "error" and answer.error.startswith("Interrupted")


def test_an_answer_stops_at_its_time_limit_with_its_text(alice, app, scripted):
    app.config["STREAM_MAX_SECONDS"] = 0.5
    scripted.endless, scripted.delay = True, 0.01
    _, message_id = start_chat(alice)
    final = events(read_stream(alice, message_id))[-1]
    assert "reached its time limit (0.5 seconds)" in final
    (answer,) = rows(app, Message, id=message_id)
    assert answer.status == "stopped" and answer.error == over_time(0.5)
    assert answer.content.startswith("t0 t1 t2")
    assert stops.wait_idle(5)


def test_a_stop_from_another_process_reaches_the_generation_through_the_saver(alice, app,
                                                                               scripted):
    """The Stop flag set in the database (as another process's Stop does) is read by the
    generating process's saver within STREAM_FOLLOW_SECONDS."""
    scripted.endless, scripted.delay = True, 0.01
    _, message_id = start_chat(alice)
    assert scripted.started.wait(5)
    with app.app_context():
        db.session.get(Message, message_id).stop_requested = True
        db.session.commit()
    assert scripted.closed.wait(5)
    assert wait_until(lambda: rows(app, Message, id=message_id)[0].status == "stopped")
