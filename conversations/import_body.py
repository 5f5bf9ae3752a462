"""The import's request body: up to IMPORT_MAX_BYTES, not MAX_REQUEST_BYTES.

An export runs to tens of MiB (ChatGPT's conversations.json), past the 8 MiB every other request
may send; the ASGI body limit lets this one path through up to IMPORT_MAX_BYTES
(chatproject/body_limit.py), and these parsers read it without Django's DATA_UPLOAD_MAX_MEMORY_SIZE
check (request.body). A multipart upload's file goes to Django's upload handlers (to a temporary
file past 2.5 MiB), as any upload does.
"""

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from rest_framework import parsers

from core.drf import django_request_of
from core.errors import ApiError
from core.http import parse_json_body


def import_too_large() -> ApiError:
    return ApiError(
        413,
        "import_too_large",
        f"The file is larger than this server imports at once ({settings.IMPORT_MAX_BYTES:,} bytes, "
        "IMPORT_MAX_BYTES): export fewer conversations at a time.",
    )


def _check_declared_length(request: HttpRequest) -> None:
    # Past the limit the ASGI middleware has cut the body short and declared its real length.
    length = request.META.get("CONTENT_LENGTH") or ""
    if length.isdigit() and int(length) > settings.IMPORT_MAX_BYTES:
        raise import_too_large()


def read_import_body(request: HttpRequest) -> bytes:
    _check_declared_length(request)
    body = request.read(settings.IMPORT_MAX_BYTES + 1)
    if len(body) > settings.IMPORT_MAX_BYTES:
        raise import_too_large()
    return body


def read_import_file(upload: UploadedFile) -> bytes:
    if upload.size is not None and upload.size > settings.IMPORT_MAX_BYTES:
        raise import_too_large()
    body = upload.read(settings.IMPORT_MAX_BYTES + 1)
    if len(body) > settings.IMPORT_MAX_BYTES:
        raise import_too_large()
    return body


class ImportJSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        return parse_json_body(read_import_body(django_request_of(parser_context)))


class ImportMultiPartParser(parsers.MultiPartParser):
    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None
    ) -> Any:
        _check_declared_length(django_request_of(parser_context))
        return super().parse(stream, media_type, parser_context)
