"""REST API: the caller's own profile (/api/profile/) and API token (/api/token/).

There is no user id in any URL: every view works on request.user, so nobody can name someone
else's profile. Token or Bearer auth (core/drf.py) or a session with CSRF.
"""

import math

from django.contrib.auth import authenticate
from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.authtoken.models import Token
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle
from rest_framework.views import APIView

from core.errors import ApiError

from .serializers import (
    ErrorSerializer,
    ProfileOutputSerializer,
    ProfileUpdateSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from .services import profile_clear_openai_key, profile_for, profile_set_openai_key, profile_set_organization

ERRORS = {
    400: OpenApiResponse(ErrorSerializer, description="Invalid body (code invalid_request, with fields)."),
    401: OpenApiResponse(ErrorSerializer, description="No, unknown or revoked token."),
}


class ProfileApi(APIView):
    @extend_schema(responses={200: ProfileOutputSerializer, 401: ERRORS[401]}, summary="Your profile")
    def get(self, request: Request) -> Response:
        return Response(ProfileOutputSerializer(profile_for(user=request.user)).data)

    @extend_schema(
        request=ProfileUpdateSerializer,
        responses={200: ProfileOutputSerializer, **ERRORS},
        summary="Set or clear your OpenAI key and organization",
    )
    def patch(self, request: Request) -> Response:
        serializer = ProfileUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        changes = serializer.validated_data
        with transaction.atomic():  # both fields or neither
            profile = profile_for(user=request.user)
            if "openai_api_key" in changes:
                if changes["openai_api_key"]:
                    profile_set_openai_key(profile=profile, api_key=changes["openai_api_key"])
                else:
                    profile_clear_openai_key(profile=profile)
            if "openai_organization_id" in changes:
                profile_set_organization(profile=profile, organization_id=changes["openai_organization_id"])
        return Response(ProfileOutputSerializer(profile).data)


class FailedLoginThrottle(SimpleRateThrottle):
    """Failed password logins per client address (REST_FRAMEWORK DEFAULT_THROTTLE_RATES["login_failures"]).

    Only failures are counted (TokenApi records them): a user who types the right password is
    never slowed down by their own earlier successes.
    """

    scope = "login_failures"

    def get_rate(self) -> str | None:
        # Read per request, not once at import as DRF's class attribute is: settings can change.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def throttle_success(self) -> bool:
        return True  # checking costs nothing; record_failure() counts

    def record_failure(self, request: Request, view: APIView) -> None:
        if self.rate is None:
            return
        key, now = self.get_cache_key(request, view), self.timer()
        history = [at for at in self.cache.get(key, []) if at > now - self.duration]
        self.cache.set(key, [now, *history], self.duration)


class TokenApi(APIView):
    throttle_classes = [FailedLoginThrottle]

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.request.method == "POST":
            return [permissions.AllowAny()]  # the password is the credential here
        return super().get_permissions()

    def get_throttles(self) -> list[BaseThrottle]:
        return super().get_throttles() if self.request.method == "POST" else []

    def throttled(self, request: Request, wait: float | None) -> None:
        seconds = math.ceil(wait) if wait else None
        raise ApiError(
            429,
            "too_many_failed_logins",
            "Too many failed logins from your address. "
            + (f"Try again in {seconds} seconds." if seconds else "Try again later."),
            headers={"Retry-After": str(seconds)} if seconds else {},
        )

    @extend_schema(
        request=TokenRequestSerializer,
        auth=[],
        responses={
            200: TokenResponseSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Missing fields, or wrong username or password (code invalid_credentials).",
            ),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed logins (Retry-After)."),
        },
        summary="Get your API token (created on first use)",
    )
    def post(self, request: Request) -> Response:
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = authenticate(request, **serializer.validated_data)
        if user is None:
            FailedLoginThrottle().record_failure(request, self)
            raise ApiError(
                400, "invalid_credentials", "Unable to log in with the username and password provided."
            )
        token, _ = Token.objects.get_or_create(user=user)
        return Response({"token": token.key})

    @extend_schema(responses={204: None, 401: ERRORS[401]}, summary="Revoke your API token")
    def delete(self, request: Request) -> Response:
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
