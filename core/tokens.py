"""The API token in an Authorization header: `Token <t>` (DRF's keyword) or `Bearer <t>` (what the
OpenAI SDKs and most HTTP tooling send). Read the same way by the DRF views (profiles/api_auth.py)
and by the async views (profiles/auth.py)."""

from django.http import HttpRequest

TOKEN_SCHEMES = (b"token", b"bearer")


class MalformedTokenHeader(ValueError):
    """A Token/Bearer Authorization header that carries no usable token; str() says why."""


def token_from_header(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower().encode() in TOKEN_SCHEMES and value.strip():
        return value.strip()
    return None


def token_from_authorization(header: bytes) -> str | None:
    """The token in a raw Authorization header, as DRF's authentication classes read it: None when
    the header is absent or of another scheme (the next authenticator may apply), or
    MalformedTokenHeader when it names our scheme but holds no single, readable token."""
    parts = header.split()
    if not parts or parts[0].lower() not in TOKEN_SCHEMES:
        return None
    if len(parts) != 2:
        raise MalformedTokenHeader("Invalid token header: send exactly 'Bearer <token>'.")
    try:
        return parts[1].decode()
    except UnicodeError:
        raise MalformedTokenHeader("Invalid token header: the token is not valid text.") from None
