"""Reading an import file: our own export, ChatGPT's conversations.json, chatbot-ui's export.

Each reader turns a file into ImportedConversation values and validates everything first: a file
with one bad conversation imports nothing, and the 400 says which conversation and field.

Formats, as their producers write them:
- ours (export.py): {"version": 1, "exported_at", "conversations": [{id, title, ..., current_leaf_id,
  messages: [{id, parent_id, role, content, model, status, finish_reason, created_at, ...}]}]}.
- ChatGPT's conversations.json: a list of {id | conversation_id, title, create_time, update_time,
  current_node, default_model_slug, is_archived, mapping: {node_id: {message, parent, children}}};
  a message is {author: {role}, content: {content_type, parts}, create_time, status, recipient,
  metadata: {model_slug, finish_details, is_visually_hidden_from_conversation}}. The tree keeps
  every branch (an edited question is a sibling); system, tool and hidden nodes, tool calls,
  reasoning summaries and empty nodes are skipped, their children moved up to the nearest kept one.
- chatbot-ui (mckaywrigley/chatbot-ui, the localStorage version; its export is what the Supabase
  version still offers as "Export old data"): {"version": 4, "history": [{id, name, messages:
  [{role, content}], model: {id, ...}, prompt, temperature, folderId}], "folders", "prompts"}, also
  version 3, version 2 ({history, folders}, no version), version 1 (a bare list of {id, name,
  messages}), and the "Export old data" file (every localStorage key, "conversationHistory" holding
  the list as a JSON string; the other keys, an API key among them, are ignored).
"""

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.errors import ApiError

from .models import Conversation, Message

TITLE_MAX = Conversation._meta.get_field("title").max_length or 200
MODEL_MAX = Message._meta.get_field("model").max_length or 100
FINISH_REASON_MAX = Message._meta.get_field("finish_reason").max_length or 32
ERROR_CODE_MAX = Message._meta.get_field("error_code").max_length or 64
# A message without a time of its own comes this long after its parent (keeps siblings in order).
_STEP = timedelta(milliseconds=1)


@dataclass
class ImportedMessage:
    key: str  # its id in the file
    parent_key: str | None  # None: a root
    role: str
    content: str
    created_at: datetime
    updated_at: datetime
    model: str = ""
    status: str = Message.Status.COMPLETE
    finish_reason: str = ""
    error_code: str = ""


@dataclass
class ImportedConversation:
    source: str  # Conversation.imported_from: "<format>:<its id there>"
    title: str
    created_at: datetime
    updated_at: datetime
    messages: list[ImportedMessage]  # parents before their children
    current_key: str | None
    model: str = ""
    system_prompt: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    pinned: bool = False
    archived: bool = False
    own_id: uuid.UUID | None = None  # ours: the id it had (already in the importer's account: skipped)
    skipped_messages: int = 0  # in the file, with nothing to keep (system, tool, empty...)


def invalid(where: str, message: str) -> ApiError:
    return ApiError(400, "invalid_import", f"{where}: {message}", fields={where: message})


def unknown_format() -> ApiError:
    return ApiError(
        400,
        "unknown_import_format",
        'This file is not an export this server reads: expected one of ours ({"version": 1, '
        '"conversations": [...]}), ChatGPT\'s conversations.json (a list of conversations with a '
        '"mapping"), or chatbot-ui\'s export ({"version": 4, "history": [...]}).',
    )


def import_read(document: Any) -> list[ImportedConversation]:
    """Every conversation in the file, validated; ApiError(400) naming the first problem."""
    fmt, items, reader = _detect(document)
    if not isinstance(items, list):
        raise invalid(fmt, "expected a list of conversations.")
    if len(items) > settings.IMPORT_MAX_CONVERSATIONS:
        raise ApiError(
            400,
            "too_many_conversations",
            f"The file holds {len(items):,} conversations; an import takes at most "
            f"{settings.IMPORT_MAX_CONVERSATIONS:,} (IMPORT_MAX_CONVERSATIONS): split the file.",
        )
    now = timezone.now()
    conversations = []
    for index, item in enumerate(items):
        where = f"conversations[{index}]"
        if not isinstance(item, dict):
            raise invalid(where, "expected an object.")
        conversation = reader(item, where, now)
        _check_bounds(conversation, where)
        conversations.append(conversation)
    return conversations


Reader = Callable[[dict[str, Any], str, datetime], ImportedConversation]


def _detect(document: Any) -> tuple[str, Any, Reader]:
    if isinstance(document, list):
        # Told apart by the first conversation; any other that does not fit is named in the 400.
        first = document[0] if document else {}
        if isinstance(first, dict) and "mapping" in first:
            return "chatgpt", document, _read_chatgpt
        if isinstance(first, dict) and ("messages" in first or not document):
            return "chatbot-ui", document, _read_chatbot_ui  # its version 1: a bare list
        raise unknown_format()
    if not isinstance(document, dict):
        raise unknown_format()
    if document.get("version") == 1 and "conversations" in document:
        return "conversations", document["conversations"], _read_ours
    if "history" in document and document.get("version", 2) in (2, 3, 4):
        return "history", document["history"] or [], _read_chatbot_ui
    if isinstance(document.get("conversationHistory"), str):  # chatbot-ui's "Export old data"
        try:
            history = orjson.loads(document["conversationHistory"])
        except orjson.JSONDecodeError:
            raise invalid("conversationHistory", "is not valid JSON.") from None
        return "conversationHistory", history, _read_chatbot_ui
    raise unknown_format()


def _check_bounds(conversation: ImportedConversation, where: str) -> None:
    name = f"{where} ({conversation.title!r})" if conversation.title else where
    if len(conversation.messages) > settings.CONVERSATION_MAX_MESSAGES:
        raise ApiError(
            400,
            "conversation_too_long",
            f"{name} has {len(conversation.messages):,} messages; a conversation holds at most "
            f"{settings.CONVERSATION_MAX_MESSAGES:,} (CONVERSATION_MAX_MESSAGES).",
            fields={where: "Too many messages."},
        )
    if len(conversation.system_prompt) > settings.MESSAGE_MAX_CHARS:
        raise ApiError(
            400,
            "message_too_long",
            f"{name}: its system prompt has {len(conversation.system_prompt):,} characters; at most "
            f"{settings.MESSAGE_MAX_CHARS:,} (MESSAGE_MAX_CHARS).",
            fields={f"{where}.system_prompt": "Too long."},
        )
    for message in conversation.messages:
        if len(message.content) > settings.MESSAGE_MAX_CHARS:
            raise ApiError(
                400,
                "message_too_long",
                f"{name}, message {message.key}: {len(message.content):,} characters; a message holds "
                f"at most {settings.MESSAGE_MAX_CHARS:,} (MESSAGE_MAX_CHARS).",
                fields={f"{where}.messages": f"Message {message.key} is too long."},
            )


# --- Small checks shared by the readers ------------------------------------------------------------


def _text(item: dict[str, Any], name: str, where: str, *, default: str = "", limit: int | None = None) -> str:
    value = item.get(name)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(f"{where}.{name}", "expected a string.")
    return value[:limit] if limit is not None else value


def _flag(item: dict[str, Any], name: str, where: str) -> bool:
    value = item.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise invalid(f"{where}.{name}", "expected true or false.")
    return value


def _iso_time(item: dict[str, Any], name: str, where: str) -> datetime | None:
    value = item.get(name)
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise invalid(f"{where}.{name}", "expected a date and time (ISO 8601).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _epoch_time(item: dict[str, Any], name: str, where: str) -> datetime | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{where}.{name}", "expected a Unix time in seconds.")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid(f"{where}.{name}", "is not a usable time.") from None


def _source_id(item: dict[str, Any], names: Iterable[str], where: str) -> str:
    for name in names:
        value = item.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()[:150]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    raise invalid(f"{where}.id", "missing: every conversation needs its id (to import it only once).")


def _in_tree_order(nodes: dict[str, str | None], where: str, describe: Callable[[str], str]) -> list[str]:
    """The keys, parents before children; a parent missing from the file or a loop is an error."""
    children: dict[str | None, list[str]] = {}
    for key, parent in nodes.items():
        if parent is not None and parent not in nodes:
            raise invalid(f"{where}.{describe(key)}", f"its parent {parent!r} is not in the file.")
        children.setdefault(parent, []).append(key)
    order: list[str] = []
    pending = list(reversed(children.get(None, [])))
    while pending:
        key = pending.pop()
        order.append(key)
        pending.extend(reversed(children.get(key, [])))
    if len(order) != len(nodes):
        looping = next(key for key in nodes if key not in set(order))
        raise invalid(f"{where}.{describe(looping)}", "its parents loop back to it (not a tree).")
    return order


# --- Ours -----------------------------------------------------------------------------------------


def _read_ours(item: dict[str, Any], where: str, now: datetime) -> ImportedConversation:
    raw_id = item.get("id")
    try:
        own_id = uuid.UUID(raw_id) if isinstance(raw_id, str) else None
    except ValueError:
        own_id = None
    if own_id is None:
        raise invalid(f"{where}.id", "expected the conversation's id (a UUID).")
    raw_messages = item.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid(f"{where}.messages", "expected a list of messages.")
    parameters = item.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise invalid(f"{where}.parameters", "expected an object.")
    created_at = _iso_time(item, "created_at", where) or now
    updated_at = _iso_time(item, "updated_at", where) or created_at

    by_key: dict[str, ImportedMessage] = {}
    parents: dict[str, str | None] = {}
    position: dict[str, int] = {}
    for index, raw in enumerate(raw_messages):
        at = f"{where}.messages[{index}]"
        if not isinstance(raw, dict):
            raise invalid(at, "expected an object.")
        key = raw.get("id")
        if not isinstance(key, str) or not key:
            raise invalid(f"{at}.id", "expected the message's id.")
        if key in by_key:
            raise invalid(f"{at}.id", f"{key!r} is used by two messages.")
        parent = raw.get("parent_id")
        if parent is not None and not isinstance(parent, str):
            raise invalid(f"{at}.parent_id", "expected a message id or null.")
        role = raw.get("role")
        if role not in Message.Role.values:
            raise invalid(f"{at}.role", f"expected one of {', '.join(Message.Role.values)}.")
        status = raw.get("status") or Message.Status.COMPLETE
        if status not in Message.Status.values:
            raise invalid(f"{at}.status", f"expected one of {', '.join(Message.Status.values)}.")
        if status == Message.Status.STREAMING:
            status = Message.Status.INTERRUPTED  # exported mid-answer: nothing will finish it here
        content = raw.get("content")
        if not isinstance(content, str):
            raise invalid(f"{at}.content", "expected a string.")
        message_created = _iso_time(raw, "created_at", at) or created_at
        by_key[key] = ImportedMessage(
            key=key,
            parent_key=parent,
            role=role,
            content=content,
            model=_text(raw, "model", at, limit=MODEL_MAX),
            status=status,
            finish_reason=_text(raw, "finish_reason", at, limit=FINISH_REASON_MAX),
            error_code=_text(raw, "error_code", at, limit=ERROR_CODE_MAX),
            created_at=message_created,
            updated_at=_iso_time(raw, "updated_at", at) or message_created,
        )
        parents[key] = parent
        position[key] = index

    order = _in_tree_order(parents, where, lambda key: f"messages[{position[key]}].parent_id")
    current = item.get("current_leaf_id")
    if current is not None and current not in by_key:
        raise invalid(f"{where}.current_leaf_id", "names no message of this conversation.")
    return ImportedConversation(
        source=f"byok-chat:{own_id}",
        own_id=own_id,
        title=_text(item, "title", where, limit=TITLE_MAX),
        model=_text(item, "model", where, limit=MODEL_MAX),
        system_prompt=_text(item, "system_prompt", where),
        parameters=parameters,
        pinned=_flag(item, "pinned", where),
        archived=_flag(item, "archived", where),
        created_at=created_at,
        updated_at=updated_at,
        messages=[by_key[key] for key in order],
        current_key=current,
    )


# --- ChatGPT --------------------------------------------------------------------------------------

_CHATGPT_TEXT_TYPES = {"text", "multimodal_text"}
_CHATGPT_FINISH = {"stop": "stop", "max_tokens": "length"}


def _read_chatgpt(item: dict[str, Any], where: str, now: datetime) -> ImportedConversation:
    mapping = item.get("mapping")
    if not isinstance(mapping, dict):
        raise invalid(f"{where}.mapping", "expected an object of nodes.")
    created_at = _epoch_time(item, "create_time", where) or now
    updated_at = _epoch_time(item, "update_time", where) or created_at

    parents: dict[str, str | None] = {}
    for key, node in mapping.items():
        if not isinstance(node, dict):
            raise invalid(f"{where}.mapping.{key}", "expected an object.")
        parent = node.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise invalid(f"{where}.mapping.{key}.parent", "expected a node id or null.")
        parents[key] = parent
    order = _in_tree_order(parents, where, lambda key: f"mapping.{key}.parent")

    kept: dict[str, ImportedMessage] = {}
    nearest_kept: dict[str, str | None] = {}  # node -> itself if kept, else its nearest kept ancestor
    times: dict[str, datetime] = {}
    skipped = 0
    for key in order:
        parent = parents[key]
        above = nearest_kept.get(parent) if parent is not None else None
        parent_time = times.get(parent) if parent is not None else None
        at = f"{where}.mapping.{key}"
        node = mapping[key]
        raw = node.get("message")
        message = _chatgpt_message(raw, at, key, above) if raw is not None else None
        if raw is not None and message is None:
            skipped += 1
        when = (_epoch_time(raw, "create_time", f"{at}.message") if isinstance(raw, dict) else None) or (
            parent_time + _STEP if parent_time else created_at
        )
        times[key] = when
        if message is None:
            nearest_kept[key] = above
            continue
        message.created_at = message.updated_at = when
        kept[key] = message
        nearest_kept[key] = key

    current = item.get("current_node")
    if current is not None and not isinstance(current, str):
        raise invalid(f"{where}.current_node", "expected a node id.")
    if current is not None and current not in mapping:
        raise invalid(f"{where}.current_node", "names no node of this conversation.")
    title = _text(item, "title", where)
    return ImportedConversation(
        source=f"chatgpt:{_source_id(item, ('conversation_id', 'id'), where)}",
        title=" ".join(title.split())[:TITLE_MAX],
        model=_text(item, "default_model_slug", where, limit=MODEL_MAX),
        archived=_flag(item, "is_archived", where),
        created_at=created_at,
        updated_at=updated_at,
        messages=list(kept.values()),
        current_key=nearest_kept.get(current) if current is not None else None,
        skipped_messages=skipped,
    )


def _chatgpt_message(raw: Any, at: str, key: str, parent_key: str | None) -> ImportedMessage | None:
    """The node's message if it is one a reader of the conversation saw; None to skip it."""
    if not isinstance(raw, dict):
        raise invalid(f"{at}.message", "expected an object or null.")
    author = raw.get("author") or {}
    role = author.get("role") if isinstance(author, dict) else None
    if role not in (Message.Role.USER, Message.Role.ASSISTANT):
        return None  # system (often empty, hidden), tool (browsing, code output)
    metadata = raw.get("metadata") or {}
    metadata = metadata if isinstance(metadata, dict) else {}
    if metadata.get("is_visually_hidden_from_conversation"):
        return None
    if raw.get("recipient", "all") != "all":
        return None  # the model calling a tool, not an answer
    content = raw.get("content") or {}
    if not isinstance(content, dict):
        raise invalid(f"{at}.message.content", "expected an object.")
    if content.get("content_type", "text") not in _CHATGPT_TEXT_TYPES:
        return None  # reasoning summaries, code for a tool, memory edits...
    parts = content.get("parts") or []
    if not isinstance(parts, list):
        raise invalid(f"{at}.message.content.parts", "expected a list.")
    texts = []
    for part in parts:
        if isinstance(part, str):
            if part.strip():
                texts.append(part)
        elif isinstance(part, dict) and "image" in str(part.get("content_type", "")):
            texts.append("[image not imported]")
    text = "\n\n".join(texts)
    if not text.strip():
        return None
    finish = metadata.get("finish_details") or {}
    finish_type = finish.get("type") if isinstance(finish, dict) else None
    status = Message.Status.COMPLETE
    if finish_type == "interrupted":
        status = Message.Status.STOPPED
    elif raw.get("status") not in (None, "finished_successfully"):
        status = Message.Status.INTERRUPTED
    model = metadata.get("model_slug")
    epoch = datetime.fromtimestamp(0, tz=UTC)
    return ImportedMessage(
        key=key,
        parent_key=parent_key,
        role=role,
        content=text,
        model=model[:MODEL_MAX] if isinstance(model, str) else "",
        status=status,
        finish_reason=_CHATGPT_FINISH.get(str(finish_type), ""),
        created_at=epoch,  # set by the caller, which knows the parent's time
        updated_at=epoch,
    )


# --- chatbot-ui -----------------------------------------------------------------------------------


def _read_chatbot_ui(item: dict[str, Any], where: str, now: datetime) -> ImportedConversation:
    raw_messages = item.get("messages")
    if not isinstance(raw_messages, list):
        raise invalid(f"{where}.messages", "expected a list of messages.")
    model = item.get("model")
    model_id = model.get("id") if isinstance(model, dict) else model
    temperature = item.get("temperature")
    parameters: dict[str, Any] = {}
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        parameters["temperature"] = temperature
    source = _source_id(item, ("id",), where)

    # No times in this format: the messages keep their order one millisecond apart, ending now.
    start = now - _STEP * len(raw_messages)
    messages: list[ImportedMessage] = []
    skipped = 0
    for index, raw in enumerate(raw_messages):
        at = f"{where}.messages[{index}]"
        if not isinstance(raw, dict):
            raise invalid(at, "expected an object.")
        content = raw.get("content")
        if not isinstance(content, str):
            raise invalid(f"{at}.content", "expected a string.")
        role = raw.get("role")
        if (
            role not in (Message.Role.USER, Message.Role.ASSISTANT, Message.Role.SYSTEM)
            or not content.strip()
        ):
            skipped += 1
            continue
        when = start + _STEP * index
        messages.append(
            ImportedMessage(
                key=str(index),
                parent_key=messages[-1].key if messages else None,
                role=role,
                content=content,
                model=model_id[:MODEL_MAX] if isinstance(model_id, str) and role == "assistant" else "",
                created_at=when,
                updated_at=when,
            )
        )
    return ImportedConversation(
        source=f"chatbot-ui:{source}",
        title=" ".join(_text(item, "name", where).split())[:TITLE_MAX],
        model=model_id[:MODEL_MAX] if isinstance(model_id, str) else "",
        system_prompt=_text(item, "prompt", where),
        parameters=parameters,
        created_at=start,
        updated_at=now,
        messages=messages,
        current_key=messages[-1].key if messages else None,
        skipped_messages=skipped,
    )
