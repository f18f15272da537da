"""A conversation as a tree of messages: its current path, each message's versions, and
choosing a version.

Every message has a parent (None for a first message) and a ``selected`` flag. Messages with
the same parent are versions of one another, in the order they were made; the selected one is
shown. The current path starts at the selected first message and follows selected children
until a message has none: what the page, the share, the Markdown export and the next turn's
history see. Choosing a version flips the flags of one set of siblings, so each branch keeps
the versions last chosen below it (going back to it shows it as it was left).
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import itemgetter
from typing import NamedTuple

from sqlalchemy import select

from .extensions import db
from .models import Message
from .queries import messages as queries


class Versions(NamedTuple):
    """Where a message stands among its siblings: ``number`` of ``total`` (from 1), and the
    ids of the versions before and after it (None at either end)."""

    number: int
    total: int
    previous: int | None
    next: int | None


class Tree:
    """The shape of one conversation: ids, parents and selected flags, no text."""

    def __init__(self, rows: Iterable[tuple[int, int | None, bool]]):
        self.parent: dict[int, int | None] = {}
        self.children: dict[int | None, list[int]] = {}
        self.selected: set[int] = set()
        # Children listed oldest first: by id (plain ints, so the sort stays in C).
        for message_id, parent_id, selected in sorted(rows, key=itemgetter(0)):
            self.parent[message_id] = parent_id
            self.children.setdefault(parent_id, []).append(message_id)
            if selected:
                self.selected.add(message_id)

    def __contains__(self, message_id: int) -> bool:
        return message_id in self.parent

    def chosen_child(self, parent_id: int | None) -> int | None:
        """The version shown among ``parent_id``'s children (the newest when none is marked,
        which only a row written by hand can leave), or None when it has none."""
        children = self.children.get(parent_id)
        if not children:
            return None
        return next((c for c in reversed(children) if c in self.selected), children[-1])

    def path(self, through: int | None = None) -> list[int]:
        """The ids of the current path, first message to last; with ``through`` (a message of
        this tree), the path through it instead: its ancestors, it, then the versions chosen
        below it."""
        forced = set(self.ancestors(through)) if through in self.parent else set()
        path: list[int] = []
        node = self._next(None, forced)
        while node is not None:
            path.append(node)
            node = self._next(node, forced)
        return path

    def _next(self, parent_id: int | None, forced: set[int]) -> int | None:
        """The child of ``parent_id`` on the path: one in ``forced``, else the chosen one."""
        for child in self.children.get(parent_id, ()):
            if child in forced:
                return child
        return self.chosen_child(parent_id)

    def leaf(self) -> int | None:
        """The last message of the current path (what a new message follows)."""
        path = self.path()
        return path[-1] if path else None

    def versions(self, message_id: int) -> Versions | None:
        """Where ``message_id`` stands among its siblings; None when it has none."""
        siblings = self.children[self.parent[message_id]]
        if len(siblings) == 1:
            return None
        at = siblings.index(message_id)
        return Versions(at + 1, len(siblings), siblings[at - 1] if at else None,
                        siblings[at + 1] if at + 1 < len(siblings) else None)

    def ancestors(self, message_id: int) -> list[int]:
        """``message_id`` and the messages above it, nearest first."""
        chain = []
        node: int | None = message_id
        while node is not None:
            chain.append(node)
            node = self.parent[node]
        return chain

    def parent_for_new(self, shown: int | None) -> int | None:
        """What a new message of the person follows: ``shown`` (the last message their page
        shows) when it is a message of this tree that nothing follows yet, so a page showing
        another branch than the one kept on the server carries on its own; else the end of
        the current path (a page that is behind sends after what was added since)."""
        if shown in self.parent and not self.children.get(shown):
            return shown
        return self.leaf()

    def has_children(self, message_id: int) -> bool:
        """Whether any message follows ``message_id`` (in any version)."""
        return bool(self.children.get(message_id))


def load(conversation_id: int) -> Tree:
    """The tree of one conversation, read in one query of three small columns."""
    m = Message.__table__.c
    rows = db.session.execute(select(m.id, m.parent_id, m.selected)
                              .where(m.conversation_id == conversation_id)).all()
    return Tree(rows)


def path_messages(conversation_id: int, tree: Tree | None = None, through: int | None = None
                  ) -> tuple[list[Message], Tree]:
    """The messages of the current path (or of the path ``through`` a message), in order, and
    the conversation's tree."""
    tree = tree if tree is not None else load(conversation_id)
    ids = tree.path(through)
    if not ids:
        return [], tree
    messages = db.session.scalars(select(Message).where(Message.id.in_(ids))
                                  .order_by(Message.id)).all()
    return list(messages), tree


def choose(conversation_id: int, message_id: int, tree: Tree | None = None) -> None:
    """Make ``message_id`` shown: it and each message above it become the selected version
    among their siblings (the caller commits). What was chosen below it stays."""
    tree = tree if tree is not None else load(conversation_id)
    for node in tree.ancestors(message_id):
        parent = tree.parent[node]
        if tree.chosen_child(parent) == node and node in tree.selected:
            continue
        db.session.execute(queries.CHOOSE, {"cid": conversation_id, "parent": parent,
                                            "chosen": node})
