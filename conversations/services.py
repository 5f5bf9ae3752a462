"""Writes: conversations and their messages. Plain functions, keyword-only arguments; they raise
ApiError (the one JSON shape) for what a caller can get wrong, so every endpoint refuses alike.

Bounds (settings, from the environment): MESSAGE_MAX_CHARS per message, CONVERSATION_MAX_MESSAGES
per conversation.
"""

import uuid
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.errors import ApiError

from .models import Conversation, Message
from .selectors import message_not_found, message_tree

TITLE_MAX_LENGTH: int = Conversation._meta.get_field("title").max_length  # type: ignore[assignment]


def title_from_first_question(text: str) -> str:
    """A title at once: the question's first non-blank line, whitespace collapsed, cut to fit."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.split())
    if len(line) > TITLE_MAX_LENGTH:
        line = line[: TITLE_MAX_LENGTH - 1].rstrip() + "…"
    return line


def message_too_long(chars: int) -> ApiError:
    return ApiError(
        400,
        "message_too_long",
        f"The message is {chars:,} characters long; this server keeps messages of at most "
        f"{settings.MESSAGE_MAX_CHARS:,} (MESSAGE_MAX_CHARS).",
        fields={"content": f"At most {settings.MESSAGE_MAX_CHARS:,} characters."},
    )


def conversation_full() -> ApiError:
    return ApiError(
        400,
        "conversation_full",
        f"This conversation has reached {settings.CONVERSATION_MAX_MESSAGES:,} messages, the most this "
        "server keeps in one (CONVERSATION_MAX_MESSAGES): start a new conversation.",
    )


def conversation_create(
    *,
    owner: AbstractBaseUser,
    title: str = "",
    model: str = "",
    system_prompt: str = "",
    parameters: dict[str, Any] | None = None,
) -> Conversation:
    return Conversation.objects.create(
        owner_id=owner.pk,
        title=title,
        model=model,
        system_prompt=system_prompt,
        parameters=parameters or {},
    )


def conversation_update(
    *,
    conversation: Conversation,
    title: str | None = None,
    pinned: bool | None = None,
    archived: bool | None = None,
    model: str | None = None,
    system_prompt: str | None = None,
    parameters: dict[str, Any] | None = None,
    current_leaf_id: uuid.UUID | None = None,
) -> Conversation:
    """Change what is given (None: unchanged). `updated_at` is not touched: it is the conversation's
    last activity (a message added), which orders the list; renaming or pinning does not reorder it.

    current_leaf_id switches branch: it must be a message of this conversation. The branch shown then
    runs down from it to its newest descendant, so naming a sibling (the page's "< 2/3 >" arrows)
    shows that sibling's whole branch, and the next message goes at its end.
    """
    changes: dict[str, Any] = {
        name: value
        for name, value in {
            "title": title,
            "pinned": pinned,
            "archived": archived,
            "model": model,
            "system_prompt": system_prompt,
            "parameters": parameters,
        }.items()
        if value is not None
    }
    if current_leaf_id is not None:
        tree = message_tree(conversation=conversation)
        if current_leaf_id not in tree.parents:
            error = message_not_found()
            error.fields = {"current_leaf_id": "No message with this id in this conversation."}
            raise error
        changes["current_leaf_id"] = tree.deepest_under(current_leaf_id)
    if changes:
        for name, value in changes.items():
            setattr(conversation, name, value)
        conversation.save(update_fields=[name.removesuffix("_id") for name in changes])
    return conversation


def conversation_delete(*, conversation: Conversation) -> None:
    # Its messages go with it (CASCADE); the collector reads only their ids, not their text.
    conversation.delete()


def message_add(
    *,
    conversation: Conversation,
    parent: Message | None,
    role: str,
    content: str,
    model: str = "",
    status: str = Message.Status.COMPLETE,
) -> Message:
    """Add a message under `parent` (None: a new root, e.g. the first question edited) and make it the
    current leaf; the conversation's updated_at becomes now. Three queries in one transaction (the
    count for the bound, the insert, the conversation's update)."""
    if role not in Message.Role.values:
        raise ValueError(f"unknown role {role!r}")
    if status not in Message.Status.values:
        raise ValueError(f"unknown status {status!r}")
    if len(content) > settings.MESSAGE_MAX_CHARS:
        raise message_too_long(len(content))
    if parent is not None and parent.conversation_id != conversation.pk:
        error = message_not_found()
        error.fields = {"parent_id": "No message with this id in this conversation."}
        raise error
    now = timezone.now()
    with transaction.atomic():
        if Message.objects.filter(conversation=conversation).count() >= settings.CONVERSATION_MAX_MESSAGES:
            raise conversation_full()
        message = Message.objects.create(
            conversation=conversation,
            parent=parent,
            role=role,
            content=content,
            model=model,
            status=status,
            created_at=now,
            updated_at=now,
        )
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message, updated_at=now)
    conversation.current_leaf = message
    conversation.updated_at = now
    return message


def message_update(
    *,
    message: Message,
    content: str | None = None,
    status: str | None = None,
    finish_reason: str | None = None,
    error_code: str | None = None,
    time_to_first_token: float | None = None,
    duration: float | None = None,
) -> Message:
    """Change what is given (None: unchanged) in one UPDATE of those columns only, and updated_at: for
    an answer written as it streams (the whole text so far each time)."""
    changes: dict[str, Any] = {
        name: value
        for name, value in {
            "content": content,
            "status": status,
            "finish_reason": finish_reason,
            "error_code": error_code,
            "time_to_first_token": time_to_first_token,
            "duration": duration,
        }.items()
        if value is not None
    }
    if status is not None and status not in Message.Status.values:
        raise ValueError(f"unknown status {status!r}")
    changes["updated_at"] = timezone.now()
    Message.objects.filter(pk=message.pk).update(**changes)
    for name, value in changes.items():
        setattr(message, name, value)
    return message
