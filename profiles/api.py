"""REST API: the caller's own profile (/api/profile/) and API tokens (/api/token/, /api/tokens/).

There is no user id in any URL: every view works on request.user, so nobody can name someone
else's profile; a token id names only one of the caller's own tokens. Token or Bearer auth
(api_auth.py) or a session with CSRF.
"""

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.drf import AuthenticatedRequest
from core.errors import ApiError
from upstream.host_guard import HostRefused, refused_error

from .api_auth import authenticated_user
from .login_throttle import (
    login_client_address,
    login_failure_record,
    login_refusal_record,
    login_throttled_message,
    login_wait_seconds,
)
from .models import ApiToken
from .serializers import (
    ErrorSerializer,
    ProfileOutputSerializer,
    ProfileUpdateSerializer,
    TokenCreatedSerializer,
    TokenCreateSerializer,
    TokenOutputSerializer,
    TokenRequestSerializer,
)
from .services import (
    profile_clear_openai_key,
    profile_for,
    profile_set_base_url,
    profile_set_openai_key,
    profile_set_organization,
)
from .token_query import TokenMatch
from .tokens import DEFAULT_NAME, token_create, token_expiry, token_list, token_revoke, tokens_revoke_all

if TYPE_CHECKING:
    # What DRF's get_permissions() returns: a permission instance, or a composed one (A & B, ~A).
    from rest_framework.permissions import _SupportsHasPermission

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid body (code invalid_request, with fields)."),
    401: OpenApiResponse(ErrorSerializer, description="No, unknown, revoked or expired token."),
}


class ProfileApi(APIView):
    @extend_schema(responses={200: ProfileOutputSerializer, 401: ERRORS[401]}, summary="Your profile")
    def get(self, request: AuthenticatedRequest) -> Response:
        return Response(ProfileOutputSerializer(profile_for(user=request.user)).data)

    @extend_schema(
        request=ProfileUpdateSerializer,
        responses={200: ProfileOutputSerializer, **ERRORS},
        summary="Set or clear your OpenAI key, organization and base URL",
    )
    def patch(self, request: AuthenticatedRequest) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        with transaction.atomic():  # every field or none (a refused base URL undoes the key too)
            profile = profile_for(user=request.user)
            if "openai_api_key" in changes:
                if changes["openai_api_key"]:
                    profile_set_openai_key(profile=profile, api_key=changes["openai_api_key"])
                else:
                    profile_clear_openai_key(profile=profile)
            if "openai_organization_id" in changes:
                profile_set_organization(profile=profile, organization_id=changes["openai_organization_id"])
            if "openai_base_url" in changes:
                try:
                    profile_set_base_url(profile=profile, base_url=changes["openai_base_url"])
                except HostRefused as refusal:
                    error = refused_error(refusal, source="own")
                    error.fields = {"openai_base_url": refusal.message}
                    raise error from None
        return Response(ProfileOutputSerializer(profile).data)


class TokenApi(APIView):
    def get_permissions(self) -> "Sequence[_SupportsHasPermission]":
        if self.request.method == "POST":
            return [permissions.AllowAny()]  # the password is the credential here
        return super().get_permissions()

    @extend_schema(
        request=TokenRequestSerializer,
        auth=[],
        responses={
            200: TokenCreatedSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Missing or invalid fields, or wrong username or password "
                "(code invalid_credentials).",
            ),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed logins (Retry-After)."),
        },
        summary="Log in for a new API token",
        description="A new token on every call, shown in this response only: tokens are stored hashed, "
        "so an earlier token cannot be returned again. Revoke the ones you no longer use "
        "(DELETE /api/tokens/{id}/).",
    )
    def post(self, request: Request) -> Response:
        # Failed logins per client address, as on the login pages (login_throttle.py): while the
        # address is throttled the password is not even checked.
        address = login_client_address(request)
        wait = login_wait_seconds(address=address)
        if wait is not None:
            login_refusal_record(address=address, wait=wait)
            raise ApiError(
                429,
                "too_many_failed_logins",
                login_throttled_message(wait),
                headers={"Retry-After": str(wait)},
            )
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        user = authenticate(request, username=data["username"], password=data["password"])
        if user is None:
            login_failure_record(address=address, username=data["username"])
            raise ApiError(
                400, "invalid_credentials", "Unable to log in with the username and password provided."
            )
        token, text = token_create(
            user=user,
            name=data.get("name") or DEFAULT_NAME,
            expires_at=token_expiry(days=data.get("expires_in_days")),
        )
        return created_token_response(token, text, status.HTTP_200_OK)

    @extend_schema(
        responses={204: None, 401: ERRORS[401]},
        summary="Revoke the token you are calling with",
        description="Revokes the token that authenticated this request; with a session, all your tokens.",
    )
    def delete(self, request: Request) -> Response:
        user = authenticated_user(request)
        if isinstance(request.auth, TokenMatch):
            token_revoke(user=user, token_id=request.auth.token_id)
        else:
            tokens_revoke_all(user=user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokensApi(APIView):
    @extend_schema(
        responses={200: TokenOutputSerializer(many=True), 401: ERRORS[401]},
        summary="Your API tokens",
        description="Name, prefix and dates of each; never a token's text, which is not stored.",
    )
    def get(self, request: Request) -> Response:
        return Response(TokenOutputSerializer(token_list(user=authenticated_user(request)), many=True).data)

    @extend_schema(
        request=TokenCreateSerializer,
        responses={201: TokenCreatedSerializer, **ERRORS},
        summary="Create an API token",
        description="The token's text is in this response only: it is stored hashed.",
    )
    def post(self, request: Request) -> Response:
        serializer = TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        token, text = token_create(
            user=authenticated_user(request),
            name=data["name"],
            expires_at=token_expiry(days=data.get("expires_in_days")),
        )
        return created_token_response(token, text, status.HTTP_201_CREATED)


class TokenApiDetail(APIView):
    @extend_schema(
        responses={
            204: None,
            401: ERRORS[401],
            404: OpenApiResponse(ErrorSerializer, description="You have no token with this id."),
        },
        summary="Revoke one of your API tokens",
    )
    def delete(self, request: Request, token_id: int) -> Response:
        if not token_revoke(user=authenticated_user(request), token_id=token_id):
            raise exceptions.NotFound("You have no API token with this id.")
        return Response(status=status.HTTP_204_NO_CONTENT)


def created_token_response(token: ApiToken, text: str, status_code: int) -> Response:
    # no-store: the one response that carries the token's text is kept by no cache.
    return Response(
        TokenCreatedSerializer(token, context={"token_text": text}).data,
        status=status_code,
        headers={"Cache-Control": "no-store"},
    )
