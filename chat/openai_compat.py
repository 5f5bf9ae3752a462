"""OpenAI-compatible endpoints, so the official SDKs work unchanged against this server:

    openai.OpenAI(base_url="https://host/v1", api_key=<your API token from POST /api/token/>)

POST /v1/chat/completions and GET /v1/models go upstream with the caller's stored OpenAI key and
organization, and answer with the upstream's own bytes: the JSON as it came, or the SSE stream
relayed as it arrives (not parsed chunk by chunk). Errors take OpenAI's shape,
{"error": {"message", "type", "param", "code", "settings_url"}}, with the codes and messages of
/api/chat/openai (core/errors.py, upstream/errors.py).

Plain async Django views (DRF has none): auth -> body -> the user's key -> model rules ->
upstream -> relay -> response, as in views.py.
"""

from functools import partial
from typing import Any

import orjson
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt

from core.errors import ApiError
from core.http import STREAM_HEADERS, parse_json_body, read_body, require_method
from core.openai_errors import openai_error_object, openai_error_response
from profiles.auth import authenticate
from profiles.models import Profile
from profiles.services import aprofile_api_credentials
from upstream import client as upstream
from upstream import relay
from upstream.client import UpstreamReply
from upstream.errors import broken_off
from usage.metered import open_metered_stream
from usage.models import V1

from .model_rules import apply_model_rules

# Client options, not request parameters: where the request goes and with whose credentials is
# ours to decide. (The SDKs never put these in the body; a hand-made request might.)
CLIENT_OPTION_FIELDS = frozenset(
    {"api_key", "organization", "project", "base_url", "api_base", "headers", "extra_headers", "extra_query"}
)
# Upstream response headers worth passing on: the request id OpenAI support asks for, and the
# caller's own rate-limit budget.
PASSED_HEADER_PREFIXES = ("x-request-id", "x-ratelimit-", "openai-processing-ms")


@csrf_exempt  # token callers have no CSRF cookie; authenticate() enforces CSRF for session callers
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    try:
        require_method(request, "POST")
        return await _chat_completions(request)
    except ApiError as error:
        return openai_error_response(request, error)


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    try:
        require_method(request, "GET")
        _, profile = await _authenticate(request)
        credentials = await aprofile_api_credentials(profile=profile)
        return _passthrough(await upstream.get_models(credentials=credentials))
    except ApiError as error:
        return openai_error_response(request, error)


@csrf_exempt
async def unknown_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    # OpenAI's own answer to an unknown URL, so an SDK raises NotFoundError with a readable message.
    return openai_error_response(
        request,
        ApiError(
            404,
            "unknown_url",
            f"Invalid URL ({request.method} /v1/{path}): this server implements "
            "POST /v1/chat/completions and GET /v1/models.",
        ),
    )


async def _chat_completions(request: HttpRequest) -> HttpResponseBase:
    user, profile = await _authenticate(request)
    params = apply_model_rules(_completion_params(parse_json_body(read_body(request))))
    credentials = await aprofile_api_credentials(profile=profile)  # own key, else the team key
    log_context = f"(/v1, user {user.pk}, model {params['model']})"
    # Usage figures are asked for on every streamed call; if the caller did not ask for them, the
    # relay takes them out again (strip_usage), so what the caller receives is what it asked for.
    # The per-user cap (429 past it) counts non-streaming calls too: they hold an upstream request as long.
    stream, caller_asked_for_usage = await open_metered_stream(
        request=request,
        user_id=user.pk,
        credentials=credentials,
        params=params,
        entry_point=V1,
        log_context=log_context,
    )
    if params.get("stream") is not True:
        async with stream:
            reply = await stream.read_reply()
            stream.record.usage = relay.usage_of_reply(reply.content)  # recorded as the stream closes
            return _passthrough(reply)

    def error_event(exc: Exception) -> bytes:
        return b"data: " + orjson.dumps({"error": openai_error_object(request, broken_off(exc))}) + b"\n\n"

    body = stream.relay(
        partial(
            relay.sse_passthrough,
            error_event=error_event,
            strip_usage=not caller_asked_for_usage,
            log_context=log_context,
        )
    )
    out = StreamingHttpResponse(body, content_type="text/event-stream", headers=STREAM_HEADERS)
    _copy_headers(stream.headers, out)
    return out


async def _authenticate(request: HttpRequest) -> tuple[Any, Profile]:
    """authenticate(), with our own 401s in the form OpenAI gives for a bad API key."""
    try:
        return await authenticate(request)
    except ApiError as error:
        if error.status != 401:
            raise
        message = (
            "You didn't provide an API key. Use your API token from this server (POST /api/token/) "
            "as the SDK's api_key, i.e. 'Authorization: Bearer <token>'."
            if error.code == "not_authenticated"
            else error.message
        )
        raise ApiError(
            401, "invalid_api_key", message, headers={"WWW-Authenticate": 'Bearer realm="api"'}
        ) from None


def _completion_params(body: Any) -> dict[str, Any]:
    """The request body as the upstream gets it: as sent, less any client options."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    model, messages = body.get("model"), body.get("messages")
    # Checked here because model rules and the upstream call need them; the rest is the upstream's to judge.
    if not isinstance(model, str) or not model.strip():
        raise ApiError(
            400,
            "invalid_request",
            "You must provide a model parameter.",
            fields={"model": "Required: a model name such as 'gpt-4o'."},
        )
    if not isinstance(messages, list):
        raise ApiError(
            400,
            "invalid_request",
            "Missing required parameter: 'messages'.",
            fields={"messages": "Required: a list of messages."},
        )
    return {name: value for name, value in body.items() if name not in CLIENT_OPTION_FIELDS}


def _passthrough(reply: UpstreamReply) -> HttpResponse:
    """The upstream's answer byte for byte, with its status and content type."""
    out = HttpResponse(reply.content, status=reply.status_code, content_type=reply.content_type)
    _copy_headers(reply.headers, out)
    return out


def _copy_headers(headers: Any, out: HttpResponseBase) -> None:
    for name, value in headers.items():
        if name.lower().startswith(PASSED_HEADER_PREFIXES):
            out[name] = value
