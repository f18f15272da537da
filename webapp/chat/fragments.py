"""The chat's fragments: pieces of its page rendered alone, from the same macros the page uses
(``templates/chat/_macros.html``), for htmx and for the answer's event stream."""

from __future__ import annotations

from .. import tree
from ..htmx import macro
from ..models import Conversation, Message

MACROS = "chat/_macros.html"


def message(m: Message, *, oob: bool = False, shape: tree.Tree | None = None) -> str:
    """One message as its ``<article>``, with its versions and the controls its place in the
    tree allows (``shape``: the conversation's tree, read when not given); ``oob`` replaces
    the one on the page in place."""
    shape = shape if shape is not None else tree.load(m.conversation_id)
    return str(macro(MACROS, "message")(m, oob=oob, versions=shape.versions(m.id),
                                        last=not shape.has_children(m.id)))


def messages(path: list[Message], shape: tree.Tree) -> str:
    """The messages of a conversation's current path (the inside of ``#messages``)."""
    return "".join(message(m, shape=shape) for m in path)


def turn(user_message: Message, answer: Message) -> str:
    """A turn: the person's message and its answer (new: one version each, nothing after)."""
    shape = tree.Tree([(user_message.id, user_message.parent_id, True),
                       (answer.id, user_message.id, True)])
    return message(user_message, shape=shape) + message(answer, shape=shape)


def edit_form(m: Message, draft: str | None = None) -> str:
    """The person's message ``m`` as a form to edit it in place and send it again."""
    return str(macro(MACROS, "edit_form")(m, draft=draft))


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


def sidebar_item(conversation: Conversation, current: int, running: bool, *,
                 alone: bool = False) -> str:
    """One item of the sidebar list (asked for again while its answer is being written or its
    title may be coming); ``alone``: asked for by itself, so the open conversation's page
    title and heading follow out of band."""
    return str(macro(MACROS, "sidebar_item")(conversation, current, running, alone=alone))


def composer_shown(message_id: int | None) -> str:
    """The composer's note of the last message the page shows, replacing the one on the page
    (a new message follows it: ``Tree.parent_for_new``)."""
    return str(macro(MACROS, "composer_shown")(message_id, oob=True))
