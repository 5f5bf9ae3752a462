"""Token authentication for the DRF views (REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES), and how
it appears in the OpenAPI schema.

The same check as the async views make (tokens.token_authenticate: one query, expiry, is_active,
last_used_at), so a token works, or is refused with the same words, on every endpoint. request.auth
is the TokenMatch: DELETE /api/token/ revokes the token that authenticated the request.
"""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.request import Request

from core.tokens import MalformedTokenHeader, token_from_authorization

from .models import ApiToken
from .token_query import TokenMatch
from .tokens import TokenRefused, token_authenticate


def authenticated_user(request: Request) -> AbstractBaseUser:
    """request.user in a view behind IsAuthenticated, typed as the user it is."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):  # the permission check has refused anonymous callers
        raise exceptions.NotAuthenticated()
    return user


class TokenOrBearerAuthentication(TokenAuthentication):
    """'Authorization: Token <t>' (DRF's keyword, kept for the challenge header) or 'Bearer <t>'."""

    model = ApiToken  # documentation only: authenticate_credentials never asks DRF's Token model

    def authenticate(self, request: Request) -> tuple[Any, TokenMatch] | None:
        try:
            token = token_from_authorization(get_authorization_header(request))
        except MalformedTokenHeader as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        if token is None:
            return None  # not ours: the next authenticator (session) may still apply
        return self.authenticate_credentials(token)

    def authenticate_credentials(self, key: str) -> tuple[Any, TokenMatch]:
        try:
            match = token_authenticate(token=key)
        except TokenRefused as refused:
            # Unknown, revoked and deactivated alike, worded as the async views word it.
            raise exceptions.AuthenticationFailed(refused.message) from None
        return match.user, match


class TokenOrBearerScheme(OpenApiAuthenticationExtension):
    """Both header forms in the OpenAPI schema, as alternatives."""

    target_class = TokenOrBearerAuthentication
    name = ["bearerAuth", "tokenAuth"]

    def get_security_definition(self, auto_schema: Any) -> list[dict[str, str]]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "Your API token (settings page, POST /api/token/ or POST /api/tokens/) "
                "as 'Authorization: Bearer <token>'.",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "Authorization",
                "description": "The same token as 'Authorization: Token <token>' (DRF's keyword).",
            },
        ]

    def get_security_requirement(self, auto_schema: Any) -> list[dict[str, list[str]]]:
        return [{"bearerAuth": []}, {"tokenAuth": []}]
