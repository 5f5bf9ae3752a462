"""Django's own 400/404/500 answers (urls.py handler400/404/500): the API paths get them in their
JSON error shape (OpenAI's under /v1), the pages keep Django's HTML."""

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from core.errors import ApiError, error_response
from core.openai_errors import openai_error_response

API_PREFIXES = ("/api/", "/v1/")


def _api_error_page(request: HttpRequest, error: ApiError) -> HttpResponse:
    if request.path.startswith("/v1/"):  # /v1 answers in OpenAI's shape
        return openai_error_response(request, error)
    return error_response(request, error)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.bad_request(request, exception)
    message = (
        "The Host header names a host this server does not answer to."
        if isinstance(exception, DisallowedHost)
        else "Bad request."
    )
    return _api_error_page(request, ApiError(400, "bad_request", message))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.page_not_found(request, exception)
    return _api_error_page(request, ApiError(404, "not_found", f"No API endpoint at {request.path}."))


def server_error(request: HttpRequest) -> HttpResponse:
    if not request.path.startswith(API_PREFIXES):
        return defaults.server_error(request)
    return _api_error_page(
        request, ApiError(500, "server_error", "Something went wrong on our side. Please try again.")
    )
