"""The chat's fragments: pieces of its page rendered alone, from the same macros the page uses
(``templates/chat/_macros.html``), for htmx and for the answer's event stream."""

from __future__ import annotations

from ..htmx import macro
from ..models import Conversation, Message

MACROS = "chat/_macros.html"


def message(m: Message, *, oob: bool = False) -> str:
    """One message as its ``<article>``; ``oob`` replaces the one on the page in place."""
    return str(macro(MACROS, "message")(m, oob=oob))


def turn(user_message: Message, answer: Message) -> str:
    """A turn: the person's message and its answer."""
    return message(user_message) + message(answer)


def conversation_list(conversations: list[Conversation], more: bool, current: int,
                      running: set[int]) -> str:
    """The sidebar's first page, as an element that replaces the list on the page in place
    (``running``: the conversations with an answer being written)."""
    return str(macro(MACROS, "conversation_list")(conversations, more, current, running,
                                                  oob=True))


def sidebar_items(conversations: list[Conversation], more: bool, page: int, current: int,
                  running: set[int]) -> str:
    """The items of one page of the sidebar list (and the button that loads the next)."""
    return str(macro(MACROS, "sidebar_items")(conversations, more, page, current, running))


def sidebar_item(conversation: Conversation, current: int, running: bool) -> str:
    """One item of the sidebar list (asked for again while its answer is being written)."""
    return str(macro(MACROS, "sidebar_item")(conversation, current, running))
