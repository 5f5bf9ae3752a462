"""OpenAI-compatible endpoints, so the official SDKs work unchanged against this server:

    openai.OpenAI(base_url="https://host/v1", api_key=<your API token from POST /api/token/>)

POST /v1/chat/completions and GET /v1/models go upstream with the caller's stored OpenAI key and
organization, and answer with the upstream's own bytes: the JSON as it came, or the SSE stream
relayed as it arrives (not parsed chunk by chunk). Errors take OpenAI's shape,
{"error": {"message", "type", "param", "code", "settings_url"}}, with the codes and messages of
/api/chat/openai (chat/errors.py, upstream.map_upstream_error).

Plain async Django views (DRF has none): auth -> body -> the user's key -> model rules ->
upstream -> relay -> response, as in views.py.
"""

from typing import Any

import httpx2
import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt
from openai._response import AsyncAPIResponse

from profiles.exceptions import OpenAIKeyMissing, OpenAIKeyUnreadable
from profiles.models import Profile
from profiles.services import OpenAICredentials, profile_openai_credentials

from . import relay, upstream
from .auth import authenticate
from .errors import ApiError, settings_url
from .limits import acquire_stream_slot
from .model_rules import apply_model_rules
from .payload import parse_json_body
from .views import KEY_MISSING, KEY_UNREADABLE, STREAM_HEADERS, read_body

# Client options, not request parameters: where the request goes and with whose credentials is
# ours to decide. (The SDKs never put these in the body; a hand-made request might.)
CLIENT_OPTION_FIELDS = frozenset(
    {"api_key", "organization", "project", "base_url", "api_base", "headers", "extra_headers", "extra_query"}
)
# Upstream response headers worth passing on: the request id OpenAI support asks for, and the
# caller's own rate-limit budget.
PASSED_HEADER_PREFIXES = ("x-request-id", "x-ratelimit-", "openai-processing-ms")


@csrf_exempt  # token callers have no CSRF cookie; authenticate() enforces CSRF for session callers
async def chat_completions(request: HttpRequest) -> HttpResponse:
    try:
        _require_method(request, "POST")
        return await _chat_completions(request)
    except ApiError as error:
        return openai_error_response(request, error)


@csrf_exempt
async def models(request: HttpRequest) -> HttpResponse:
    try:
        _require_method(request, "GET")
        _, profile = await _authenticate(request)
        response = await upstream.get_models(credentials=_credentials(profile))
        return await _passthrough_json(response)
    except ApiError as error:
        return openai_error_response(request, error)


@csrf_exempt
async def unknown_endpoint(request: HttpRequest, path: str) -> HttpResponse:
    # OpenAI's own answer to an unknown URL, so an SDK raises NotFoundError with a readable message.
    return openai_error_response(request, ApiError(
        404, "unknown_url", f"Invalid URL ({request.method} /v1/{path}): this server implements "
        "POST /v1/chat/completions and GET /v1/models."))


async def _chat_completions(request: HttpRequest) -> HttpResponse:
    user, profile = await _authenticate(request)
    params = _completion_params(parse_json_body(read_body(request)))
    credentials = _credentials(profile)
    params = apply_model_rules(params)
    # The per-user cap (429 past it) counts non-streaming calls too: they hold an upstream request as long.
    slot = await acquire_stream_slot(user_id=user.pk)
    if params.get("stream") is not True:
        try:
            response = await upstream.open_chat_completion(credentials=credentials, params=params)
            return await _passthrough_json(response)
        finally:
            await slot.release()

    def error_event(exc: Exception) -> bytes:
        return b"data: " + orjson.dumps({"error": _error_object(request, _broken_off(exc))}) + b"\n\n"

    try:
        # Opened before the response starts, so an error that comes first gets a real status.
        response = await upstream.open_chat_completion(credentials=credentials, params=params)
        events = relay.sse_passthrough(
            response, error_event=error_event, log_context=f"(/v1, user {user.pk}, model {params['model']})"
        )
        await anext(events)  # enter the relay's try/finally: from here on it always closes the upstream
    except BaseException:  # an upstream error, or the client left while we waited
        await slot.release()
        raise
    events = slot.held_while(events)  # released when the stream ends, however it ends
    out = StreamingHttpResponse(events, content_type="text/event-stream", headers=STREAM_HEADERS)
    _copy_headers(response, out)
    return out


def _require_method(request: HttpRequest, method: str) -> None:
    if request.method != method:
        raise ApiError(405, "method_not_allowed", f"Method {request.method} is not allowed here; use {method}.",
                       headers={"Allow": method})


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
        raise ApiError(401, "invalid_api_key", message, headers={"WWW-Authenticate": 'Bearer realm="api"'}) from None


def _completion_params(body: Any) -> dict[str, Any]:
    """The request body as the upstream gets it: as sent, less any client options."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "The request body must be a JSON object.")
    model, messages = body.get("model"), body.get("messages")
    # Checked here because model rules and the upstream call need them; the rest is the upstream's to judge.
    if not isinstance(model, str) or not model.strip():
        raise ApiError(400, "invalid_request", "You must provide a model parameter.",
                       fields={"model": "Required: a model name such as 'gpt-4o'."})
    if not isinstance(messages, list):
        raise ApiError(400, "invalid_request", "Missing required parameter: 'messages'.",
                       fields={"messages": "Required: a list of messages."})
    return {name: value for name, value in body.items() if name not in CLIENT_OPTION_FIELDS}


def _credentials(profile: Profile) -> OpenAICredentials:
    try:
        return profile_openai_credentials(profile=profile)
    except OpenAIKeyMissing:
        raise KEY_MISSING from None
    except OpenAIKeyUnreadable:
        raise KEY_UNREADABLE from None


async def _passthrough_json(response: AsyncAPIResponse[Any]) -> HttpResponse:
    """The upstream's answer byte for byte, with its status and content type."""
    try:
        content = await response.read()
    except httpx2.HTTPError as exc:
        raise _broken_off(exc) from None
    finally:
        await response.close()
    head = response.http_response
    out = HttpResponse(content, status=head.status_code,
                       content_type=head.headers.get("content-type", "application/json"))
    _copy_headers(response, out)
    return out


def _copy_headers(response: AsyncAPIResponse[Any], out: HttpResponse) -> None:
    for name, value in response.http_response.headers.items():
        if name.lower().startswith(PASSED_HEADER_PREFIXES):
            out[name] = value


def _broken_off(exc: BaseException) -> ApiError:
    """The upstream failed after its response began (mid-body or mid-stream)."""
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):  # the SDK's transport, or aiohttp's own
        return ApiError(504, "openai_timeout", f"OpenAI stopped sending the answer (nothing for "
                        f"{settings.OPENAI_TIMEOUT:g} seconds). Please try again.")
    return ApiError(502, "openai_interrupted", "The answer from OpenAI broke off before it was complete. "
                    "Please try again.")


# --- OpenAI's error shape ---------------------------------------------------------------------

def openai_error_type(error: ApiError) -> str:
    if error.code == "openai_quota_exceeded":
        return "insufficient_quota"  # OpenAI's own type for it
    if error.status == 429:
        return "rate_limit_error"
    if error.status >= 500:
        return "server_error"
    return "invalid_request_error"  # OpenAI's type for 4xx, a bad API key included


def _error_object(request: HttpRequest, error: ApiError) -> dict[str, Any]:
    return {
        "message": error.message,
        "type": openai_error_type(error),
        "param": next(iter(error.fields), None) if error.fields else None,
        "code": error.code,
        "settings_url": settings_url(request),
    }


def openai_error_response(request: HttpRequest, error: ApiError) -> JsonResponse:
    response = JsonResponse({"error": _error_object(request, error)}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.code == "openai_quota_exceeded":
        response["x-should-retry"] = "false"  # the OpenAI SDKs would otherwise retry it in vain
    return response
