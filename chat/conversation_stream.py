"""POST /api/conversations/{id}/messages/: a question (or a new answer to one) in a saved conversation,
answered as Server-Sent Events and saved as it streams; POST .../messages/{message_id}/stop/.

Reads forward: auth -> body -> the branch (conversations.answers) -> the user's key -> model rules ->
upstream stream (its usage recorded as the other endpoints do) -> conversations.streaming (events,
writes) -> response. Errors before the answer starts are the usual JSON errors, and nothing is
saved (conversations/answers.py says why).
"""

import contextlib
import math
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from conversations.answers import answer_plan
from conversations.offloop import run_db
from conversations.services import message_too_long
from conversations.streaming import AnswerStream, answer_stop
from core.errors import ApiError, error_body, error_response
from core.http import STREAM_HEADERS, parse_json_body, read_body, require_method
from profiles.auth import authenticate
from profiles.services import aprofile_api_credentials
from usage.metered import open_metered_stream
from usage.models import CONVERSATION

from .model_rules import apply_model_rules

MODEL_MAX_CHARS = 100  # Message.model's length


@dataclass(frozen=True, slots=True)
class MessageRequest:
    content: str | None  # None: answer the question parent_id names again
    model: str | None
    temperature: float | None
    parent_id: uuid.UUID | None
    parent_given: bool  # parent_id absent: the current leaf (or, regenerating, its last question)


def validate_message_request(body: Any) -> MessageRequest:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    errors: dict[str, str] = {}
    content = body.get("content")
    if content is not None and (not isinstance(content, str) or not content.strip()):
        errors["content"] = "Must be a non-empty string (or left out, to answer parent_id again)."
    elif isinstance(content, str) and len(content) > settings.MESSAGE_MAX_CHARS:
        raise message_too_long(len(content))
    model = body.get("model")
    if model is not None and (
        not isinstance(model, str) or not model.strip() or len(model) > MODEL_MAX_CHARS
    ):
        errors["model"] = "Must be a model name such as 'gpt-4o'."
    temperature = body.get("temperature")
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not math.isfinite(temperature)
        or not 0 <= temperature <= 2
    ):
        errors["temperature"] = "Must be a number from 0 to 2."
    parent_id: uuid.UUID | None = None
    raw_parent = body.get("parent_id")
    if raw_parent is not None:
        with contextlib.suppress(ValueError):
            parent_id = uuid.UUID(raw_parent) if isinstance(raw_parent, str) else None
        if parent_id is None:
            errors["parent_id"] = "Must be a message id (or null: a new first question)."
    if errors:
        first = next(iter(errors))
        raise ApiError(400, "invalid_request", f"Invalid request: {first}: {errors[first]}", fields=errors)
    return MessageRequest(
        content=content,
        model=model.strip() if model is not None else None,
        temperature=temperature,
        parent_id=parent_id,
        parent_given="parent_id" in body,
    )


@csrf_exempt  # token callers have no CSRF cookie; authenticate() enforces CSRF for session callers
async def conversation_message(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponseBase:
    try:
        require_method(request, "POST")
        return await _conversation_message(request, conversation_id)
    except ApiError as error:
        return error_response(request, error)


async def _conversation_message(request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponseBase:
    user, profile = await authenticate(request)
    ask = validate_message_request(parse_json_body(read_body(request)))
    plan = await run_db(
        answer_plan,
        owner=user,
        conversation_id=conversation_id,
        content=ask.content,
        parent_id=ask.parent_id,
        parent_given=ask.parent_given,
        model=ask.model,
        temperature=ask.temperature,
    )
    credentials = await aprofile_api_credentials(profile=profile)  # (another's conversation: 404 first)
    params: dict[str, Any] = {"model": plan.model, "messages": plan.history, "stream": True}
    if plan.temperature is not None:
        params["temperature"] = plan.temperature
    log_context = f"(user {user.pk}, conversation {conversation_id}, model {plan.model})"
    # The usage event it asks for is read by text_deltas, never relayed.
    stream, _ = await open_metered_stream(
        request=request,
        user_id=user.pk,
        credentials=credentials,
        params=apply_model_rules(params),
        entry_point=CONVERSATION,
        log_context=log_context,
        message_id=plan.answer.id,
    )
    answer = AnswerStream(
        plan, credentials=credentials, error_body=partial(error_body, request), log_context=log_context
    )
    await answer.start(stream)  # saves the question and the answer, then relays
    return StreamingHttpResponse(answer.events(), content_type="text/event-stream", headers=STREAM_HEADERS)


@csrf_exempt
async def conversation_message_stop(
    request: HttpRequest, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> HttpResponseBase:
    """200 and the saved message once stopped (or if it had ended already); 202 and the message as
    it is now when another worker streams it: that worker stops it within MESSAGE_FLUSH_SECONDS."""
    try:
        require_method(request, "POST")
        user, _ = await authenticate(request)
        message, ended = await answer_stop(owner=user, conversation_id=conversation_id, message_id=message_id)
        return JsonResponse(message, status=200 if ended else 202)
    except ApiError as error:
        return error_response(request, error)
