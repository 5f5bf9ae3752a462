"""GET /api/usage/: the caller's usage totals per day, model or entry point over a period.

{"from", "to", "group_by", "results": [{"key", "calls", "prompt_tokens", "completion_tokens",
"cached_tokens", "reasoning_tokens", "estimated_calls", "cost"}]}. `cost` is a decimal string in
USD: the sum over the group's priced calls, or null when no call in the group has a price (a group
mixing priced and unpriced calls gives the priced calls' sum). Staff may add ?user=<id or username>.
"""

from decimal import Decimal
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from profiles.api_auth import authenticated_user
from profiles.serializers import ErrorSerializer

from .params import period_from
from .selectors import GROUPS, usage_totals


def usd(cost: Decimal | None) -> str | None:
    """A cost as a plain decimal string ("0.00123"), or None."""
    return None if cost is None else format(cost.normalize(), "f")


RESULT = inline_serializer(
    "UsageGroup",
    {
        "key": serializers.CharField(
            help_text="The day (YYYY-MM-DD, UTC), the model, or the entry point (chat_api, v1, conversation)."
        ),
        "calls": serializers.IntegerField(),
        "prompt_tokens": serializers.IntegerField(),
        "completion_tokens": serializers.IntegerField(help_text="Reasoning tokens included."),
        "cached_tokens": serializers.IntegerField(help_text="Of the prompt tokens."),
        "reasoning_tokens": serializers.IntegerField(help_text="Of the completion tokens."),
        "estimated_calls": serializers.IntegerField(
            help_text="Calls cut off before the upstream sent its figures: their tokens are estimates."
        ),
        "cost": serializers.CharField(
            allow_null=True,
            help_text="USD, a decimal string: the sum over the group's priced calls; null when no call "
            "in the group has a price.",
        ),
    },
)
REPORT = inline_serializer(
    "UsageReport",
    {
        "from": serializers.DateField(),
        "to": serializers.DateField(),
        "group_by": serializers.ChoiceField(choices=GROUPS),
        "results": serializers.ListField(child=RESULT),
    },
)


class UsageApi(APIView):
    @extend_schema(
        summary="Your usage and its cost, per day, model or entry point",
        description="Every upstream call is recorded when it ends (complete, stopped, client gone or "
        "failed). Days are UTC; the period includes both ends (default: the last 30 days).",
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="First day (YYYY-MM-DD)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (YYYY-MM-DD), included."),
            OpenApiParameter("group_by", str, enum=list(GROUPS), description="Default: day."),
            OpenApiParameter("user", str, description="Staff only: another user's id or username."),
        ],
        responses={
            200: REPORT,
            400: OpenApiResponse(ErrorSerializer, description="A bad parameter (code invalid_request)."),
            401: OpenApiResponse(ErrorSerializer, description="No, unknown, revoked or expired token."),
            403: OpenApiResponse(ErrorSerializer, description="?user= without being staff."),
        },
        tags=["usage"],
    )
    def get(self, request: Request) -> Response:
        query = request.query_params
        group_by = query.get("group_by") or "day"
        if group_by not in GROUPS:
            raise ApiError(
                400,
                "invalid_request",
                "'group_by' must be day, model or entry_point.",
                fields={"group_by": "One of: day, model, entry_point."},
            )
        period = period_from(query)
        user_id = _user_id(request, query.get("user"))
        rows = usage_totals(user_id=user_id, period=period, group_by=group_by)
        return Response(
            {
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "group_by": group_by,
                "results": [_result(row, group_by) for row in rows],
            }
        )


def _user_id(request: Request, named: str | None) -> int:
    me = authenticated_user(request)
    if not named:
        return int(me.pk)
    users = get_user_model().objects
    other = users.filter(pk=int(named)).first() if named.isdigit() else None
    other = other or users.filter(**{users.model.USERNAME_FIELD: named}).first()
    if other is not None and other.pk == me.pk:
        return int(me.pk)
    if not getattr(me, "is_staff", False):
        raise ApiError(403, "permission_denied", "Only staff may read another user's usage.")
    if other is None:
        raise ApiError(
            400, "invalid_request", "No such user.", fields={"user": "No user has this id or username."}
        )
    return int(other.pk)


def _result(row: dict[str, Any], group_by: str) -> dict[str, Any]:
    key = row["key"]
    return {
        "key": key.isoformat() if group_by == "day" else key,
        "calls": row["calls"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "cached_tokens": row["cached_tokens"],
        "reasoning_tokens": row["reasoning_tokens"],
        "estimated_calls": row["estimated_calls"],
        "cost": usd(row["cost"]),
    }
