"""The one JSON error shape: {"message", "code", "settings_url"} (+ "fields" for validation errors).

`message` comes first, as in chatbot-ui's route, so clients that only read `message` keep working.
`settings_url` always points at the page where a user fixes their key (by URL name: the page lives
in `profiles`, a layer above this one). /v1 answers in OpenAI's shape instead: openai_errors.py.
"""

from dataclasses import dataclass, field

from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, JsonResponse
from django.urls import reverse


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
    body: dict[str, object] = {
        "message": error.message,
        "code": error.code,
        "settings_url": settings_url(request),
    }
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
