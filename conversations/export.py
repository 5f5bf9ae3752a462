"""Exporting conversations (GET /api/conversations/export/): one JSON document with every message of
every branch, which POST /api/conversations/import/ takes back (import_formats.py, "ours")."""

import uuid
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from core.errors import ApiError

from .models import Conversation, Message

EXPORT_VERSION = 1

CONVERSATION_FIELDS = (
    "id",
    "title",
    "model",
    "system_prompt",
    "parameters",
    "pinned",
    "archived",
    "created_at",
    "updated_at",
    "current_leaf_id",
)
MESSAGE_FIELDS = (
    "id",
    "parent_id",
    "role",
    "content",
    "model",
    "status",
    "finish_reason",
    "error_code",
    "created_at",
    "updated_at",
)


def conversations_export(*, owner: AbstractBaseUser, ids: list[uuid.UUID] | None = None) -> dict[str, Any]:
    """The owner's conversations (all, or those named: 404 if one is not theirs), oldest first, each
    with its messages oldest first. Two queries, whatever the number of conversations."""
    conversations = Conversation.objects.filter(owner_id=owner.pk).order_by("created_at", "id")
    if ids is not None:
        conversations = conversations.filter(id__in=ids)
    rows = list(conversations.values(*CONVERSATION_FIELDS))
    if ids is not None and len(rows) != len(set(ids)):
        found = {row["id"] for row in rows}
        missing = next(str(conversation_id) for conversation_id in ids if conversation_id not in found)
        raise ApiError(404, "not_found", f"You have no conversation with id {missing}.")
    by_id = {row["id"]: {**row, "messages": []} for row in rows}
    messages = (
        Message.objects.filter(conversation__in=conversations)
        .order_by("conversation_id", "created_at", "id")
        .values("conversation_id", *MESSAGE_FIELDS)
    )
    for message in messages.iterator(chunk_size=2000):
        by_id[message.pop("conversation_id")]["messages"].append(message)
    return {"version": EXPORT_VERSION, "exported_at": timezone.now(), "conversations": list(by_id.values())}
