"""The API token in an Authorization header: `Token <t>` (DRF's keyword) or `Bearer <t>` (what the
OpenAI SDKs and most HTTP tooling send). Read the same way by the DRF views (core/drf.py) and by
the async views (profiles/auth.py)."""

from django.http import HttpRequest

TOKEN_SCHEMES = (b"token", b"bearer")


def token_from_header(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower().encode() in TOKEN_SCHEMES and value.strip():
        return value.strip()
    return None
