"""OpenAI's error shape, for the OpenAI-compatible /v1 endpoints:
{"error": {"message", "type", "param", "code", "settings_url"}}, with the codes and messages of the
one JSON shape (errors.py), so an official SDK raises the exception class it would for OpenAI.
"""

from typing import Any

from django.http import HttpRequest, JsonResponse

from .errors import ApiError, settings_url


def openai_error_type(error: ApiError) -> str:
    if error.code == "openai_quota_exceeded":
        return "insufficient_quota"  # OpenAI's own type for it
    if error.status == 429:
        return "rate_limit_error"
    if error.status >= 500:
        return "server_error"
    return "invalid_request_error"  # OpenAI's type for 4xx, a bad API key included


def openai_error_object(request: HttpRequest, error: ApiError) -> dict[str, Any]:
    return {
        "message": error.message,
        "type": openai_error_type(error),
        "param": next(iter(error.fields), None) if error.fields else None,
        "code": error.code,
        "settings_url": settings_url(request),
    }


def openai_error_response(request: HttpRequest, error: ApiError) -> JsonResponse:
    response = JsonResponse({"error": openai_error_object(request, error)}, status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    if error.code == "openai_quota_exceeded":
        response["x-should-retry"] = "false"  # the OpenAI SDKs would otherwise retry it in vain
    return response
