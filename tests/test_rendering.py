"""Rendering model output: images become links, and the streaming block renderer."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest

from webapp.models import Message
from webapp.rendering import StreamingMarkdown, answer_stats, message_info, render_markdown

#: Answers with every kind of block, including the cases where a block's end is subtle.
ANSWERS = [
    "Here is **bold** text and a list:\n\n- one\n- two\n\n```python\nprint('hi')\n```\n"
    "Done <b>x</b>.",
    "# Title\n\npara one\nstill one\n\n1. a\n2. b\n\n   cont\n\n> quote\n> more\n\n"
    "last ![img](http://e.example/x.png) [![i](http://a.example/b.png)](http://c.example)",
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n| 3 | 4 |\n\nafter\n\n~~~\ncode\n~~~~\n\n    indented\n\n"
    "text\n---\n\n* x\n\n* y\nlazy\n\nend",
    "```\nunclosed\n\nstill code",
    "para\n- item\n\n```js\nx\n```\n```\ny\n```\n",
    "Setext\n===\n\n2) two\n3) three\n\n***\n\n<script>alert(1)</script>\n\n[a](javascript:x)",
    "A table right after a paragraph\n| h |\n|---|\n| c |\n\n    ```\n    not a fence\n",
]


def stream(text: str, pieces: list[str]) -> tuple[list[str], str]:
    """Feed ``pieces`` (which join to ``text``); the HTML of each feed and of the end."""
    renderer = StreamingMarkdown()
    out = [renderer.feed(piece)[0] for piece in pieces]
    assert renderer.text == text
    return out, renderer.finish()


@pytest.mark.parametrize("text", ANSWERS)
def test_streamed_blocks_join_to_the_final_html_however_the_text_is_cut(text):
    want = str(render_markdown(text))
    for seed in range(60):
        rng = random.Random(seed)
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 9)
            pieces.append(text[i:i + n])
            i += n
        out, tail = stream(text, pieces)
        assert "".join(out) + tail == want, (seed, pieces)
    out, tail = stream(text, list(text))  # one character at a time
    assert "".join(out) + tail == want


def test_a_block_is_sent_once_the_next_begins_and_a_fence_once_closed():
    renderer = StreamingMarkdown()
    assert renderer.feed("Some **bold") == ("", False)
    assert renderer.feed("** words\n") == ("", False)  # the paragraph may go on
    assert renderer.open_text == "Some **bold** words\n"
    assert renderer.feed("\n- one\n") == ("<p>Some <strong>bold</strong> words</p>\n", True)
    assert renderer.open_text == "- one\n"
    assert renderer.feed("- two\n") == ("", False)  # the list may go on
    # A fence begins: the list is finished; the fence is open until its closing marker.
    html, cut = renderer.feed("\n```py\nx = 1\n")
    assert cut and html == "<ul>\n<li>one</li>\n<li>two</li>\n</ul>\n"
    assert renderer.open_text == "```py\nx = 1\n"
    assert renderer.feed("``") == ("", False)
    html, cut = renderer.feed("`\n")
    assert cut and html.startswith('<pre><code class="language-py">') and "x" in html
    assert renderer.open_text == ""
    renderer.feed("tail")
    assert renderer.finish() == "<p>tail</p>\n"


def test_streamed_blocks_are_sanitized():
    renderer = StreamingMarkdown()
    html, _ = renderer.feed("<script>alert(1)</script> [x](javascript:alert(1)) "
                            "![i](http://evil.example/p.png)\n\nnext\n")
    assert "<script" not in html and 'href="javascript' not in html and "<img" not in html
    assert "&lt;script&gt;" in html and '<a href="http://evil.example/p.png"' in html


def test_remote_images_become_links():
    html = str(render_markdown('![a cat](https://cats.example/cat.png "Cat") and '
                               '![](http://x.example/y.png)'))
    assert "<img" not in html
    assert ('<a href="https://cats.example/cat.png" title="Cat" '
            'rel="noopener noreferrer nofollow">a cat</a>') in html
    # No alt text: the address is the link's text.
    assert '>http://x.example/y.png</a>' in html


def test_an_image_inside_a_link_is_its_text():
    html = str(render_markdown("[![badge](http://b.example/b.svg)](https://site.example)"))
    assert html == ('<p><a href="https://site.example" rel="noopener noreferrer nofollow">'
                    'badge</a></p>\n')


def test_an_image_with_a_script_address_is_not_a_link():
    html = str(render_markdown("![x](javascript:alert(1)) ![y](data:image/png;base64,AAAA)"))
    assert "<img" not in html and "href" not in html


def test_an_answers_details_show_its_tokens_first_token_and_rate():
    start = datetime(2026, 12, 3, 12, 0, 0)
    answer = Message(role="assistant", status="complete", provider="local", model="m",
                     params={"temperature": 0.5}, token_count=101, started_at=start,
                     first_token_at=start + timedelta(seconds=0.25),
                     finished_at=start + timedelta(seconds=4.25))
    assert answer_stats(answer) == [("tokens", "101"), ("time to first token", "0.25 s"),
                                    ("tokens per second", "25.0"), ("total time", "4.25 s")]
    details = str(message_info(answer))
    assert "<summary>local · m · 101 tokens · 25.0 tokens/s</summary>" in details
    assert "<dt>temperature</dt><dd>0.5</dd>" in details
    # Before its first token, an answer has no rate to show.
    waiting = Message(role="assistant", status="stopped", token_count=0, started_at=start,
                      finished_at=start + timedelta(seconds=3))
    assert answer_stats(waiting) == [("total time", "3.00 s")]
