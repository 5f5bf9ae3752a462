"""Reads: one of the caller's conversations, their list (newest first, search, archive filter), and the
branch of a conversation's message tree that is shown.

A conversation belongs to its owner only: asking for another user's answers the same 404 as an
unknown id, so nobody learns that it exists.
"""

import re
import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.contrib.postgres.search import SearchQuery, SearchVector
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from core.errors import ApiError

from .models import Conversation, Message

# PostgreSQL's text-search configuration for ?search=: English stemming ("running" finds "run");
# words of other languages are left as they are, so they still match themselves.
SEARCH_CONFIG = "english"
_WORD = re.compile(r"\w+")


def conversation_not_found() -> ApiError:
    return ApiError(404, "not_found", "You have no conversation with this id.")


def message_not_found() -> ApiError:
    return ApiError(404, "not_found", "This conversation has no message with this id.")


def conversation_for(*, owner: AbstractBaseUser, conversation_id: uuid.UUID | str) -> Conversation:
    """The owner's conversation, or ApiError(404): another user's is "not found" too, never 403."""
    try:
        return Conversation.objects.get(id=conversation_id, owner_id=owner.pk)
    except (Conversation.DoesNotExist, ValidationError):  # ValidationError: not a UUID
        raise conversation_not_found() from None


def message_for(*, conversation: Conversation, message_id: uuid.UUID | str) -> Message:
    """A message of this conversation, or ApiError(404)."""
    try:
        return Message.objects.get(id=message_id, conversation=conversation)
    except (Message.DoesNotExist, ValidationError):
        raise message_not_found() from None


def conversation_list(
    *, owner: AbstractBaseUser, search: str = "", archived: bool = False
) -> QuerySet[Conversation]:
    """The owner's conversations, most recently active first (pinning is for pages to show)."""
    conversations = Conversation.objects.filter(owner_id=owner.pk, archived=archived)
    search = search.strip()
    if search:
        conversations = conversations.filter(_search_filter(owner=owner, search=search))
    return conversations.order_by("-updated_at", "-id")


def _search_filter(*, owner: AbstractBaseUser, search: str) -> Q:
    words = _WORD.findall(search)
    if connection.vendor != "postgresql" or not words:
        # SQLite (development, tests): a substring of the title or of any message.
        in_messages = Message.objects.filter(conversation=OuterRef("pk"), content__icontains=search)
        return Q(title__icontains=search) | Q(Exists(in_messages))
    # Every word, each as a prefix ("pyth" finds "Python": the sidebar searches as the user types).
    # Only \w+ words reach the raw query, so none of tsquery's operators can come from the user.
    query = SearchQuery(" & ".join(f"{word}:*" for word in words), search_type="raw", config=SEARCH_CONFIG)
    matching_messages = (
        Message.objects.filter(conversation__owner_id=owner.pk)
        .annotate(search_vector=SearchVector("content", config=SEARCH_CONFIG))
        .filter(search_vector=query)
        .values("conversation_id")
    )
    matching_titles = (
        Conversation.objects.filter(owner_id=owner.pk)
        .annotate(search_vector=SearchVector("title", config=SEARCH_CONFIG))
        .filter(search_vector=query)
        .values("id")
    )
    return Q(id__in=matching_titles) | Q(id__in=matching_messages) | Q(title__icontains=search)


# --- The message tree ------------------------------------------------------------------------------


@dataclass(frozen=True)
class BranchMessage:
    message: Message
    # Every message under the same parent (the roots, for a root), itself included, oldest first:
    # what the page's "< 2/3 >" arrows move between.
    sibling_ids: list[uuid.UUID]


@dataclass
class MessageTree:
    """A conversation's tree without the messages' text: ids only, children oldest first."""

    parents: dict[uuid.UUID, uuid.UUID | None]
    children: dict[uuid.UUID | None, list[uuid.UUID]]  # None: the roots
    newest: uuid.UUID | None

    def path_to(self, leaf_id: uuid.UUID) -> list[uuid.UUID]:
        """Root .. leaf_id."""
        path: list[uuid.UUID] = []
        node: uuid.UUID | None = leaf_id
        while node is not None and len(path) <= len(self.parents):  # (bounded even if a cycle slipped in)
            path.append(node)
            node = self.parents.get(node)
        path.reverse()
        return path

    def deepest_under(self, message_id: uuid.UUID) -> uuid.UUID:
        """The leaf reached from message_id by following the newest child each time."""
        node = message_id
        for _ in range(len(self.parents)):
            below = self.children.get(node)
            if not below:
                break
            node = below[-1]
        return node


def message_tree(*, conversation: Conversation) -> MessageTree:
    """One query for ids and parents only: a conversation holds at most CONVERSATION_MAX_MESSAGES, and
    the text of the messages off the shown branch is never read."""
    parents: dict[uuid.UUID, uuid.UUID | None] = {}
    children: dict[uuid.UUID | None, list[uuid.UUID]] = {}
    rows = Message.objects.filter(conversation=conversation).order_by("created_at", "id")
    for message_id, parent_id in rows.values_list("id", "parent_id"):
        parents[message_id] = parent_id
        children.setdefault(parent_id, []).append(message_id)
    newest = next(reversed(parents), None)
    return MessageTree(parents=parents, children=children, newest=newest)


def branch_messages(*, conversation: Conversation) -> list[BranchMessage]:
    """The branch shown: root .. current leaf, oldest first, each with its sibling_ids. Two queries
    whatever the tree's size (its shape, then the branch's messages)."""
    tree = message_tree(conversation=conversation)
    leaf = conversation.current_leaf_id
    if leaf not in tree.parents:  # none yet (or it was removed): the newest message's branch
        leaf = tree.newest
    if leaf is None:
        return []
    path = tree.path_to(leaf)
    by_id = Message.objects.in_bulk(path)
    return [
        BranchMessage(message=by_id[message_id], sibling_ids=tree.children[tree.parents[message_id]])
        for message_id in path
        if message_id in by_id
    ]


def message_path(*, conversation: Conversation, leaf_id: uuid.UUID) -> list[Message]:
    """Root .. leaf_id, oldest first: the history sent upstream when answering under leaf_id."""
    tree = message_tree(conversation=conversation)
    if leaf_id not in tree.parents:
        raise message_not_found()
    path = tree.path_to(leaf_id)
    by_id = Message.objects.in_bulk(path)
    return [by_id[message_id] for message_id in path if message_id in by_id]
