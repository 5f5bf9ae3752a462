"""REST API for saved conversations: /api/conversations/ (list, create), /api/conversations/{id}/ (read,
change, delete), /api/conversations/export/ and /api/conversations/import/.

Every view works on the caller's own conversations: another user's id answers 404, as an unknown
one does (selectors.conversation_for), so nobody learns that it exists. Token or Bearer auth, or a
session with CSRF. Answers with messages stream from POST /api/conversations/{id}/messages/ (chat/).
"""

import uuid
from datetime import date
from typing import Any

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.errors import ApiError
from core.http import parse_json_body
from profiles.api_auth import authenticated_user
from profiles.serializers import ErrorSerializer

from .export import conversations_export
from .import_body import ImportJSONParser, ImportMultiPartParser, read_import_file
from .importing import conversations_import
from .models import Conversation
from .selectors import branch_messages, conversation_for, conversation_list
from .serializers import (
    ConversationCreateSerializer,
    ConversationDetailSerializer,
    ConversationOutputSerializer,
    ConversationUpdateSerializer,
    ExportSerializer,
    ImportResultSerializer,
    ImportUploadSerializer,
)
from .services import conversation_create, conversation_delete, conversation_update

SEARCH_MAX_CHARS = 200
NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="You have no conversation with this id (another user's is not found either)."
)
UNAUTHORIZED = OpenApiResponse(ErrorSerializer, description="No, unknown, revoked or expired token.")
INVALID = OpenApiResponse(ErrorSerializer, description="Invalid body (code invalid_request, with fields).")


class ConversationPagination(PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Request) -> int | None:
        self.page_size = settings.CONVERSATIONS_PAGE_SIZE  # read per request: settings may change in tests
        return super().get_page_size(request)


def _detail(conversation: Conversation) -> dict[str, Any]:
    context = {"branch": branch_messages(conversation=conversation)}
    return dict(ConversationDetailSerializer(conversation, context=context).data)


def _flag_param(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "false").lower()
    if value in ("true", "1"):
        return True
    if value in ("false", "0", ""):
        return False
    raise ApiError(
        400, "invalid_request", f"Invalid request: {name}: use true or false.", fields={name: "true or false"}
    )


class ConversationsApi(APIView):
    pagination_class = ConversationPagination  # (also what puts the page envelope in the schema)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "search",
                str,
                description="Words in the title or in any message (all of them; PostgreSQL: full-text "
                "search with English stemming, each word also as a prefix; SQLite: the text as typed).",
            ),
            OpenApiParameter("archived", bool, description="true: the archived ones only (default false)."),
            OpenApiParameter("page", int, description="1, 2, ..."),
            OpenApiParameter(
                "page_size", int, description="Default CONVERSATIONS_PAGE_SIZE (50), at most 100."
            ),
        ],
        responses={
            200: ConversationOutputSerializer(many=True),
            400: OpenApiResponse(ErrorSerializer, description="Bad search or archived."),
            401: UNAUTHORIZED,
            404: OpenApiResponse(ErrorSerializer, description="No such page."),
        },
        summary="Your conversations, most recently active first",
    )
    def get(self, request: Request) -> Response:
        search = request.query_params.get("search", "")
        if len(search) > SEARCH_MAX_CHARS:
            raise ApiError(
                400,
                "invalid_request",
                f"Invalid request: search: at most {SEARCH_MAX_CHARS} characters.",
                fields={"search": f"At most {SEARCH_MAX_CHARS} characters."},
            )
        conversations = conversation_list(
            owner=authenticated_user(request), search=search, archived=_flag_param(request, "archived")
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(conversations, request, view=self)
        return paginator.get_paginated_response(ConversationOutputSerializer(page, many=True).data)

    @extend_schema(
        request=ConversationCreateSerializer,
        responses={201: ConversationDetailSerializer, 400: INVALID, 401: UNAUTHORIZED},
        summary="Start a conversation",
        description="Its messages are added by POST /api/conversations/{id}/messages/, which answers.",
    )
    def post(self, request: Request) -> Response:
        serializer = ConversationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation = conversation_create(owner=authenticated_user(request), **serializer.validated_data)
        return Response(_detail(conversation), status=status.HTTP_201_CREATED)


class ConversationApi(APIView):
    @extend_schema(
        responses={200: ConversationDetailSerializer, 401: UNAUTHORIZED, 404: NOT_FOUND},
        summary="A conversation with the branch shown",
    )
    def get(self, request: Request, conversation_id: uuid.UUID) -> Response:
        return Response(
            _detail(conversation_for(owner=authenticated_user(request), conversation_id=conversation_id))
        )

    @extend_schema(
        request=ConversationUpdateSerializer,
        responses={200: ConversationDetailSerializer, 400: INVALID, 401: UNAUTHORIZED, 404: NOT_FOUND},
        summary="Rename, pin, archive, or switch branch",
        description="Only the fields sent change. current_leaf_id names any message of the conversation "
        "(404 otherwise); the branch through it, down to its newest descendant, becomes the one shown "
        "and the one the next message continues.",
    )
    def patch(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation = conversation_for(owner=authenticated_user(request), conversation_id=conversation_id)
        serializer = ConversationUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        conversation_update(conversation=conversation, **serializer.validated_data)
        return Response(_detail(conversation))

    @extend_schema(
        responses={204: None, 401: UNAUTHORIZED, 404: NOT_FOUND},
        summary="Delete a conversation and all its messages",
    )
    def delete(self, request: Request, conversation_id: uuid.UUID) -> Response:
        conversation_delete(
            conversation=conversation_for(owner=authenticated_user(request), conversation_id=conversation_id)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def _ids_param(request: Request) -> list[uuid.UUID] | None:
    raw = request.query_params.get("ids")
    if raw is None:
        return None
    try:
        return [uuid.UUID(part.strip()) for part in raw.split(",") if part.strip()]
    except ValueError:
        raise ApiError(
            400,
            "invalid_request",
            "Invalid request: ids: conversation ids (UUIDs) separated by commas.",
            fields={"ids": "Conversation ids (UUIDs) separated by commas."},
        ) from None


class ConversationsExportApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "ids", str, description="Comma-separated conversation ids; default: all of yours."
            )
        ],
        responses={
            200: ExportSerializer,
            400: OpenApiResponse(ErrorSerializer, description="ids is not a list of UUIDs."),
            401: UNAUTHORIZED,
            404: OpenApiResponse(ErrorSerializer, description="One of ids is not a conversation of yours."),
        },
        summary="Export your conversations",
        description="Every message of every branch, with ids, parents, roles, models, statuses and times: "
        "POST /api/conversations/import/ takes the file back, here or in another account.",
    )
    def get(self, request: Request) -> Response:
        document = conversations_export(owner=authenticated_user(request), ids=_ids_param(request))
        filename = f"conversations-{date.today().isoformat()}.json"
        return Response(document, headers={"Content-Disposition": f'attachment; filename="{filename}"'})


class ConversationsImportApi(APIView):
    # Up to IMPORT_MAX_BYTES rather than MAX_REQUEST_BYTES (import_body.py).
    parser_classes = [ImportJSONParser, ImportMultiPartParser]

    @extend_schema(
        request={"application/json": OpenApiTypes.OBJECT, "multipart/form-data": ImportUploadSerializer},
        responses={
            200: ImportResultSerializer,
            400: OpenApiResponse(
                ErrorSerializer,
                description="Not a file this server reads, or a bad conversation in it (the message and "
                "fields say which and why; nothing is imported), or past a bound: "
                "IMPORT_MAX_CONVERSATIONS, CONVERSATION_MAX_MESSAGES, MESSAGE_MAX_CHARS.",
            ),
            401: UNAUTHORIZED,
            409: OpenApiResponse(ErrorSerializer, description="The same file imported at the same moment."),
            413: OpenApiResponse(ErrorSerializer, description="The file is larger than IMPORT_MAX_BYTES."),
        },
        summary="Import conversations",
        description="The file as the JSON body, or a multipart upload (field `file`): an export of ours "
        "(from this account or another), ChatGPT's conversations.json (every branch kept), or "
        "chatbot-ui's JSON export. All or nothing; importing the same file again skips what is "
        "already here.",
    )
    def post(self, request: Request) -> Response:
        if request.content_type.startswith("multipart/"):
            upload = request.FILES.get("file")
            if upload is None:
                raise ApiError(
                    400,
                    "invalid_request",
                    "Invalid request: file: attach the export file as the field 'file'.",
                    fields={"file": "Attach the export file."},
                )
            document = parse_json_body(read_import_file(upload))
        else:
            document = request.data
        result = conversations_import(owner=authenticated_user(request), document=document)
        return Response(result.as_json())
