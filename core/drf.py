"""Django REST framework plumbing for every DRF view: body parsers and the exception handler that
puts DRF's errors in the one JSON shape. Named in settings.REST_FRAMEWORK. (Token authentication
needs the token model, a layer up: profiles/api_auth.py.)

Parsers: DRF's own read the request stream directly, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check
(an oversize body became Django's HTML 400), and its JSON parser uses json.loads, which raises
RecursionError on deeply nested input (a 500); these use read_body (413) and orjson (400).
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from rest_framework import exceptions as drf_exceptions
from rest_framework import parsers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings as drf_settings

from .errors import ApiError, error_body, not_authenticated
from .http import parse_json_body, read_body

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# --- Views' request type -----------------------------------------------------------------------


class AuthenticatedRequest(Request):
    """The request of a DRF view behind IsAuthenticated, for type checking: its user is signed in,
    never AnonymousUser. (Only an annotation: the view is given DRF's Request as ever.)"""

    user: "User"


# --- Parsers -----------------------------------------------------------------------------------


def django_request_of(parser_context: Mapping[str, Any] | None) -> HttpRequest:
    """The Django request under DRF's, for a parser that must read the body through Django (the
    413 limit). `Request._request` is DRF's own attribute: this is its one use (a contract test
    checks it is still there)."""
    assert parser_context is not None  # DRF's Request always passes it, with the request in it
    request: HttpRequest = parser_context["request"]._request
    return request


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return parse_json_body(read_body(django_request_of(parser_context)))


class _WithinBodyLimit(parsers.BaseParser):
    """Mixed in before one of DRF's parsers, whose parse() it calls."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        # 413 past the limit; otherwise the body is now buffered and `stream` reads it from memory.
        read_body(django_request_of(parser_context))
        return super().parse(stream, media_type, parser_context)


class FormParser(_WithinBodyLimit, parsers.FormParser):
    pass


class MultiPartParser(_WithinBodyLimit, parsers.MultiPartParser):
    pass


# --- Exception handler ---------------------------------------------------------------------------


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
