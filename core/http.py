"""Reading requests and the headers of streamed answers, shared by every API endpoint."""

from typing import TYPE_CHECKING, Any

import orjson
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest

from .errors import ApiError

if TYPE_CHECKING:
    from django.contrib.auth.models import User

# No caching, and no buffering by a proxy in front (nginx honours X-Accel-Buffering).
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a view behind login_required, for type checking: its user is signed in, never
    AnonymousUser. (Only an annotation: the view is given Django's HttpRequest as ever.)"""

    user: "User"


def read_body(request: HttpRequest) -> bytes:
    """The request body, or ApiError(413) past DATA_UPLOAD_MAX_MEMORY_SIZE (see chatproject/body_limit.py)."""
    try:
        return request.body
    except RequestDataTooBig:
        raise ApiError(
            413, "request_too_large", "The request body is larger than this server accepts."
        ) from None


def parse_json_body(raw: bytes) -> Any:
    """Parse a JSON request body; any Content-Type (chatbot-ui's browser sends none).

    orjson, not json: it stops at 1,024 levels of nesting with an error, where json.loads raises
    RecursionError (a 500).
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"The request body is not valid JSON ({exc.msg}).") from None


def require_method(request: HttpRequest, method: str) -> None:
    """ApiError(405) with an Allow header (Django's require_POST answers with an empty body)."""
    if request.method != method:
        raise ApiError(
            405,
            "method_not_allowed",
            f"Method {request.method} is not allowed here; use {method}.",
            headers={"Allow": method},
        )
