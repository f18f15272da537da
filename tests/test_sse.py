"""The bulk SSE parser: the same events however the bytes are cut."""

from __future__ import annotations

import pytest

from webapp.providers.sse import events

STREAM = ("data: one\n\n"
          ": a comment, as keepalives are\r\n"
          "id: 7\r\nevent: delta\r\ndata: two\r\ndata: lines\r\n\r\n"
          "data:no space\r\rdata:  two spaces\n\n"
          "retry: 100\nfield-we-ignore: x\n\n"
          "data: é and 😀 split\n\n\n\n"
          "event: error\ndata: {\"error\": \"x\"}\n\n").encode()
EXPECTED = [("message", "one"), ("delta", "two\nlines"), ("message", "no space"),
            ("message", " two spaces"), ("message", "é and 😀 split"),
            ("error", '{"error": "x"}')]


def test_events_whole():
    assert list(events([STREAM])) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64])
def test_events_cut_into_pieces_of_any_size(size):
    # Every cut: inside lines, CRLF pairs, UTF-8 characters and the blank lines.
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert list(events(pieces)) == EXPECTED


def test_every_single_cut_point():
    for cut in range(len(STREAM) + 1):
        assert list(events([STREAM[:cut], b"", STREAM[cut:]])) == EXPECTED, cut


def test_an_event_missing_its_blank_line_at_the_end_is_still_yielded():
    # The caller decides whether that was a cut stream (its JSON will not parse).
    assert list(events([b'data: {"a": 1}\n\ndata: {"b"'])) == [("message", '{"a": 1}'),
                                                                ("message", '{"b"')]
    assert list(events([b"data: x\n\n\n"])) == [("message", "x")]


def test_events_without_data_are_not_dispatched():
    assert list(events([b"event: ping\n\nid: 3\n\n: only a comment\n\n"])) == []
