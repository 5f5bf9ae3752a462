"""POST /api/chat/openai: chatbot-ui's route, streaming the answer as plain text.

Reads forward: auth -> payload -> the user's key -> model rules -> upstream -> relay -> response.
"""

import logging

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from profiles.exceptions import OpenAIKeyMissing, OpenAIKeyUnreadable
from profiles.services import profile_openai_credentials

from . import relay, upstream
from .auth import authenticate
from .errors import ApiError, error_response
from .limits import acquire_stream_slot
from .model_rules import apply_model_rules
from .payload import parse_json_body, validate_chat_request

logger = logging.getLogger(__name__)

KEY_MISSING = ApiError(400, "openai_api_key_missing",
                       "OpenAI API Key not found. Please set it in your profile settings.")
KEY_UNREADABLE = ApiError(400, "openai_api_key_unreadable",
                          "Your stored OpenAI API Key can no longer be read (the server's encryption key changed). "
                          "Please re-enter it in your profile settings.")

STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@csrf_exempt  # token callers have no CSRF cookie; authenticate() enforces CSRF for session callers
async def chat_openai(request: HttpRequest) -> HttpResponse:
    try:
        if request.method != "POST":  # not require_POST: its 405 has an empty body
            raise ApiError(405, "method_not_allowed", "Use POST.", headers={"Allow": "POST"})
        return await _chat_openai(request)
    except ApiError as error:
        return error_response(request, error)


async def _chat_openai(request: HttpRequest) -> HttpResponse:
    user, profile = await authenticate(request)
    chat = validate_chat_request(parse_json_body(read_body(request)))
    try:
        credentials = profile_openai_credentials(profile=profile)
    except OpenAIKeyMissing:
        raise KEY_MISSING from None
    except OpenAIKeyUnreadable:
        raise KEY_UNREADABLE from None

    params = {"model": chat.model, "messages": chat.messages, "stream": True}
    if chat.temperature is not None:
        params["temperature"] = chat.temperature
    slot = await acquire_stream_slot(user_id=user.pk)  # 429 past the per-user cap
    try:
        # Opened before the response starts, so an error that comes first gets a real status.
        response = await upstream.open_chat_completion(credentials=credentials, params=apply_model_rules(params))
        deltas = relay.text_deltas(response, log_context=f"(user {user.pk}, model {chat.model})")
        await anext(deltas)  # enter the relay's try/finally: from here on it always closes the upstream
    except BaseException:  # an upstream error, or the client left while we waited
        await slot.release()
        raise
    deltas = slot.held_while(deltas)  # closed and released when the stream ends, however it ends
    return StreamingHttpResponse(deltas, content_type="text/plain; charset=utf-8", headers=STREAM_HEADERS)


def read_body(request: HttpRequest) -> bytes:
    try:
        return request.body
    except RequestDataTooBig:
        raise ApiError(413, "request_too_large", "The request body is larger than this server accepts.") from None
