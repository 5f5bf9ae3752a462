"""Validation of chatbot-ui's request body: {"chatSettings": {...}, "messages": [...]}.

Hand-written rather than a serializer: it runs on every chat request and the shape is small.
Errors are collected per field ("messages[2].role") so a client sees everything wrong at once.
"""

import math
from dataclasses import dataclass
from typing import Any

from core.errors import ApiError

ROLES = frozenset({"system", "user", "assistant"})
PART_TYPES = frozenset({"text", "image_url"})
MAX_MESSAGES = 1000


@dataclass(frozen=True, slots=True)
class ChatRequest:
    model: str
    temperature: float | None
    messages: list[dict[str, Any]]


def _is_one_of(value: Any, names: frozenset[str]) -> bool:
    return isinstance(value, str) and value in names  # `in` on a list or dict value would raise TypeError


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_content(content: Any, where: str, errors: dict[str, str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list) or not content:
        errors[where] = "Must be a string or a non-empty list of content parts."
        return
    for index, part in enumerate(content):
        at = f"{where}[{index}]"
        if not isinstance(part, dict) or not _is_one_of(part.get("type"), PART_TYPES):
            errors[at] = "Must be an object with type 'text' or 'image_url'."
        elif part["type"] == "text" and not isinstance(part.get("text"), str):
            errors[f"{at}.text"] = "Must be a string."
        elif part["type"] == "image_url" and not (
            isinstance(part.get("image_url"), dict) and isinstance(part["image_url"].get("url"), str)
        ):
            errors[f"{at}.image_url.url"] = "Must be a string (an https or data: URL)."


def validate_chat_request(body: Any) -> ChatRequest:
    errors: dict[str, str] = {}
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")

    settings_in = body.get("chatSettings")
    model: Any = None
    temperature: Any = None
    if not isinstance(settings_in, dict):
        errors["chatSettings"] = "Required: an object with at least 'model'."
    else:
        model = settings_in.get("model")
        if not isinstance(model, str) or not model.strip() or len(model) > 200:
            errors["chatSettings.model"] = "Required: a model name such as 'gpt-4o'."
        temperature = settings_in.get("temperature")
        if temperature is not None and (
            not _is_number(temperature) or not math.isfinite(temperature) or not 0 <= temperature <= 2
        ):
            errors["chatSettings.temperature"] = "Must be a number from 0 to 2."

    messages: Any = body.get("messages")
    if not isinstance(messages, list) or not messages:
        errors["messages"] = "Required: a non-empty list of messages."
    elif len(messages) > MAX_MESSAGES:
        errors["messages"] = f"At most {MAX_MESSAGES} messages."
    else:
        for index, message in enumerate(messages):
            at = f"messages[{index}]"
            if not isinstance(message, dict):
                errors[at] = "Must be an object with 'role' and 'content'."
                continue
            if not _is_one_of(message.get("role"), ROLES):
                errors[f"{at}.role"] = "Must be one of: system, user, assistant."
            if "content" not in message:
                errors[f"{at}.content"] = "Required."
            else:
                _check_content(message["content"], f"{at}.content", errors)

    if errors:
        first = next(iter(errors))
        raise ApiError(400, "invalid_request", f"Invalid request: {first}: {errors[first]}", fields=errors)
    # Only role and content go upstream; a client cannot smuggle other message fields through.
    clean = [{"role": m["role"], "content": m["content"]} for m in messages]
    return ChatRequest(model=model.strip(), temperature=temperature, messages=clean)
