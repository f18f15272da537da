"""The chat's fragments: pieces of its page rendered alone, from the same macros the page uses
(``templates/chat/_macros.html``), for htmx and for the answer's event stream."""

from __future__ import annotations

from ..htmx import macro
from ..models import Conversation, Message

MACROS = "chat/_macros.html"


def message(m: Message, *, oob: bool = False, live: bool = False) -> str:
    """One message as its ``<article>``; ``oob`` replaces the one on the page in place,
    ``live`` marks an answer streamed by the response that carries it."""
    return str(macro(MACROS, "message")(m, oob=oob, live=live))


def turn(user_message: Message, answer: Message, *, live: bool = False) -> str:
    """A turn: the person's message and its answer."""
    return message(user_message, live=live) + message(answer, live=live)


def conversation_list(conversations: list[Conversation], more: bool, current: int) -> str:
    """The sidebar's first page, as an element that replaces the list on the page in place."""
    return str(macro(MACROS, "conversation_list")(conversations, more, current, oob=True))


def sidebar_items(conversations: list[Conversation], more: bool, page: int, current: int
                  ) -> str:
    """The items of one page of the sidebar list (and the button that loads the next)."""
    return str(macro(MACROS, "sidebar_items")(conversations, more, page, current))
