"""Importing conversations (POST /api/conversations/import/): the whole file or nothing.

The file is read and validated first (import_formats.py); then one transaction writes it in a few
bulk statements (conversations, their messages, their current leaves). Every conversation keeps
where it came from (`imported_from`, "<format>:<its id there>", unique per owner), so importing the
same file again skips what is already here. Every row gets a new UUID: ids in the file never name
a row of this database, so a file cannot touch anyone else's conversation, and our own export goes
into another account as a copy.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from core.errors import ApiError

from .import_formats import ImportedConversation, import_read
from .models import Conversation, Message

# Rows per INSERT: large enough that 2,000 messages take a few statements, small enough for
# SQLite's limit on query parameters.
BATCH_SIZE = 500


@dataclass
class ImportResult:
    conversations: int = 0
    messages: int = 0
    skipped_conversations: int = 0
    skipped_messages: int = 0  # of already imported conversations, or with nothing to keep

    def as_json(self) -> dict[str, dict[str, int]]:
        return {
            "imported": {"conversations": self.conversations, "messages": self.messages},
            "skipped": {"conversations": self.skipped_conversations, "messages": self.skipped_messages},
        }


def conversations_import(*, owner: AbstractBaseUser, document: Any) -> ImportResult:
    """Import a parsed file (any format import_formats reads) into owner's account."""
    imported = import_read(document)  # ApiError(400) before anything is written
    try:
        with transaction.atomic():
            return _write(owner=owner, imported=imported)
    except IntegrityError:
        # The same file imported twice at the same moment: the unique (owner, imported_from) refused
        # the second; everything of it was rolled back.
        raise ApiError(
            409, "import_conflict", "Another import of these conversations ran at the same time: try again."
        ) from None


def _write(*, owner: AbstractBaseUser, imported: list[ImportedConversation]) -> ImportResult:
    result = ImportResult()
    here_sources = set(
        Conversation.objects.filter(
            owner_id=owner.pk, imported_from__in=[item.source for item in imported]
        ).values_list("imported_from", flat=True)
    )
    own_ids = [item.own_id for item in imported if item.own_id is not None]
    here_ids = set(
        Conversation.objects.filter(owner_id=owner.pk, id__in=own_ids).values_list("id", flat=True)
    )

    conversations: list[Conversation] = []
    messages: list[Message] = []
    leaves: list[tuple[Conversation, Message]] = []
    for item in imported:
        if item.source in here_sources or item.own_id in here_ids:
            result.skipped_conversations += 1
            result.skipped_messages += len(item.messages) + item.skipped_messages
            continue
        here_sources.add(item.source)  # the same conversation twice in one file: once
        conversation = Conversation(
            owner_id=owner.pk,
            title=item.title,
            model=item.model,
            system_prompt=item.system_prompt,
            parameters=item.parameters,
            pinned=item.pinned,
            archived=item.archived,
            imported_from=item.source,
            created_at=item.created_at,
            updated_at=item.updated_at,
        )
        conversations.append(conversation)
        rows: dict[str, Message] = {}
        for message in item.messages:  # parents first
            rows[message.key] = Message(
                id=uuid.uuid4(),
                conversation=conversation,
                parent=rows[message.parent_key] if message.parent_key is not None else None,
                role=message.role,
                content=message.content,
                model=message.model,
                status=message.status,
                finish_reason=message.finish_reason,
                error_code=message.error_code,
                created_at=message.created_at,
                updated_at=message.updated_at,
            )
        messages.extend(rows.values())
        leaf = rows.get(item.current_key) if item.current_key is not None else None
        if leaf is None and rows:
            leaf = max(rows.values(), key=lambda row: row.created_at)
        if leaf is not None:
            leaves.append((conversation, leaf))
        result.conversations += 1
        result.messages += len(rows)
        result.skipped_messages += item.skipped_messages

    Conversation.objects.bulk_create(conversations, batch_size=BATCH_SIZE)
    Message.objects.bulk_create(messages, batch_size=BATCH_SIZE)
    for conversation, leaf in leaves:
        conversation.current_leaf = leaf
    Conversation.objects.bulk_update([c for c, _ in leaves], ["current_leaf"], batch_size=BATCH_SIZE)
    return result
