"""DRF authentication for the REST API: one API token, sent as `Token <t>` or `Bearer <t>`.

`Bearer` is what the OpenAI SDKs (and most HTTP tooling) send; `Token` is DRF's own keyword.
The async views do the same in chat/auth.py, with the same schemes.
"""

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.request import Request

from .auth import TOKEN_SCHEMES


class TokenOrBearerAuthentication(TokenAuthentication):
    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() not in TOKEN_SCHEMES:
            return None  # not ours: the next authenticator (session) may still apply
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header: send exactly 'Bearer <token>'.")
        try:
            key = parts[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the token is not valid text.") from None
        return self.authenticate_credentials(key)

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        try:
            return super().authenticate_credentials(key)
        except exceptions.AuthenticationFailed:
            # Unknown and deactivated alike, worded as the async views word it.
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.") from None


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    """Both header forms in the OpenAPI schema, as alternatives."""

    target_class = TokenOrBearerAuthentication
    name = ["bearerAuth", "tokenAuth"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {"type": "http", "scheme": "bearer",
             "description": "Your API token (POST /api/token/) as 'Authorization: Bearer <token>'."},
            {"type": "apiKey", "in": "header", "name": "Authorization",
             "description": "The same token as 'Authorization: Token <token>' (DRF's keyword)."},
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{"bearerAuth": []}, {"tokenAuth": []}]
