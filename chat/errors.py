"""The one JSON error shape: {"message", "code", "settings_url"} (+ "fields" for validation errors).

`message` comes first, as in chatbot-ui's route, so clients that only read `message` keep working.
`settings_url` always points at the page where a user fixes their key.
"""

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import DisallowedHost, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views import defaults
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.settings import api_settings as drf_settings


@dataclass
class ApiError(Exception):
    status: int
    code: str
    message: str
    fields: dict[str, str] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.status} {self.code}: {self.message}"


def settings_url(request: HttpRequest) -> str:
    try:
        return request.build_absolute_uri(reverse("profile-settings"))
    except DisallowedHost:  # answering a request whose Host header we refuse: no host to name
        return reverse("profile-settings")


def error_body(request: HttpRequest, error: ApiError) -> dict[str, object]:
    body: dict[str, object] = {"message": error.message, "code": error.code, "settings_url": settings_url(request)}
    if error.fields:
        body["fields"] = error.fields
    return body


def error_response(request: HttpRequest, error: ApiError) -> JsonResponse:
    response = JsonResponse(error_body(request, error), status=error.status)
    for name, value in error.headers.items():
        response[name] = value
    return response


def not_authenticated() -> ApiError:
    return ApiError(
        401,
        "not_authenticated",
        "Authentication required: log in, or send 'Authorization: Token <your API token>'.",
        headers={"WWW-Authenticate": 'Token realm="api"'},
    )


def drf_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """REST_FRAMEWORK's EXCEPTION_HANDLER: DRF's errors (and ApiError) in the one JSON shape.

    Validation errors become code `invalid_request` with `fields` ("field" or "parent.child" /
    "items[0]" -> first message), as the hand-written payload validation does.
    """
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, drf_exceptions.APIException):
        error = _api_error_from_drf(exc)
    else:
        return None  # a bug: Django's 500 handling (and logging) takes over
    return Response(error_body(context["request"], error), status=error.status, headers=error.headers)


_DRF_CODES = {"parse_error": "invalid_json", "authentication_failed": "invalid_token"}


def _api_error_from_drf(exc: drf_exceptions.APIException) -> ApiError:
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))  # type: ignore[attr-defined]

    if isinstance(exc, drf_exceptions.ValidationError):
        fields = _flatten_errors(exc.detail, "")
        first = next(iter(fields), None)
        if first is None:
            message = "Invalid request."
        elif first == drf_settings.NON_FIELD_ERRORS_KEY:
            message = f"Invalid request: {fields[first]}"
        else:
            message = f"Invalid request: {first}: {fields[first]}"
        return ApiError(exc.status_code, "invalid_request", message, fields=fields or None, headers=headers)
    if isinstance(exc, drf_exceptions.NotAuthenticated):
        error = not_authenticated()
        error.headers.update(headers)
        return error
    if isinstance(exc, drf_exceptions.PermissionDenied) and str(exc.detail).startswith("CSRF Failed"):
        return ApiError(403, "csrf_failed", "CSRF check failed: reload the page and try again.")
    code = exc.get_codes()
    code = code if isinstance(code, str) else exc.default_code
    return ApiError(exc.status_code, _DRF_CODES.get(code, code), str(exc.detail), headers=headers)


def _flatten_errors(detail: Any, where: str) -> dict[str, str]:
    if isinstance(detail, dict):
        fields: dict[str, str] = {}
        for name, inner in detail.items():
            fields.update(_flatten_errors(inner, f"{where}.{name}" if where else str(name)))
        return fields
    where = where or drf_settings.NON_FIELD_ERRORS_KEY
    if isinstance(detail, list):
        if detail and all(isinstance(item, str) for item in detail):
            return {where: str(detail[0])}  # the first message per field, as elsewhere
        fields = {}
        for index, inner in enumerate(detail):
            fields.update(_flatten_errors(inner, f"{where}[{index}]"))
        return fields
    return {where: str(detail)}


# Django's own 400/404/500 answers, for the API paths, in the API's error shape (pages keep Django's).
API_PREFIXES = ("/api/", "/v1/")


def _api_error_page(request: HttpRequest, error: ApiError) -> HttpResponse:
    if request.path.startswith("/v1/"):
        from .openai_compat import openai_error_response  # /v1 answers in OpenAI's shape

        return openai_error_response(request, error)
    return error_response(request, error)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.bad_request(request, exception)
    message = ("The Host header names a host this server does not answer to."
               if isinstance(exception, DisallowedHost) else "Bad request.")
    return _api_error_page(request, ApiError(400, "bad_request", message))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.page_not_found(request, exception)
    return _api_error_page(request, ApiError(404, "not_found", f"No API endpoint at {request.path}."))


def server_error(request: HttpRequest) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.server_error(request)
    return _api_error_page(request, ApiError(500, "server_error", "Something went wrong on our side. Please try again."))
