"""POST /api/chat/openai: chatbot-ui's route, streaming the answer as plain text.

Reads forward: auth -> payload -> the user's key -> model rules -> upstream stream -> relay -> response.
"""

from functools import partial

from django.http import HttpRequest, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from core.errors import ApiError, error_response
from core.http import STREAM_HEADERS, parse_json_body, read_body, require_method
from profiles.auth import authenticate
from profiles.services import aprofile_api_credentials
from upstream import relay
from usage.metered import open_metered_stream
from usage.models import CHAT_API

from .model_rules import apply_model_rules
from .payload import validate_chat_request


@csrf_exempt  # token callers have no CSRF cookie; authenticate() enforces CSRF for session callers
async def chat_openai(request: HttpRequest) -> HttpResponseBase:
    try:
        require_method(request, "POST")
        return await _chat_openai(request)
    except ApiError as error:
        return error_response(request, error)


async def _chat_openai(request: HttpRequest) -> HttpResponseBase:
    user, profile = await authenticate(request)
    chat = validate_chat_request(parse_json_body(read_body(request)))
    credentials = await aprofile_api_credentials(profile=profile)  # own key, else the team key
    params = {"model": chat.model, "messages": chat.messages, "stream": True}
    if chat.temperature is not None:
        params["temperature"] = chat.temperature
    log_context = f"(user {user.pk}, model {chat.model})"
    # The usage event it asks for is read by text_deltas, never relayed.
    stream, _ = await open_metered_stream(
        request=request,
        user_id=user.pk,
        credentials=credentials,
        params=apply_model_rules(params),
        entry_point=CHAT_API,
        log_context=log_context,
    )
    body = stream.relay(partial(relay.text_deltas, log_context=log_context))
    return StreamingHttpResponse(body, content_type="text/plain; charset=utf-8", headers=STREAM_HEADERS)
