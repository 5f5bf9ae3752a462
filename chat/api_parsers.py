"""DRF's body parsers, held to the chat API's rules: the body size limit (413) and orjson parsing.

DRF's own parsers read the request stream directly, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE
check (an oversize body became Django's HTML 400), and its JSON parser uses json.loads, which
raises RecursionError on deeply nested input (a 500); orjson stops at 1,024 levels with a 400.
"""

from typing import Any

from rest_framework import parsers

from .payload import parse_json_body
from .views import read_body


class JSONParser(parsers.BaseParser):
    media_type = "application/json"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        return parse_json_body(read_body(parser_context["request"]._request))


class _WithinBodyLimit:
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        # 413 past the limit; otherwise the body is now buffered and `stream` reads it from memory.
        read_body(parser_context["request"]._request)
        return super().parse(stream, media_type, parser_context)  # type: ignore[misc]


class FormParser(_WithinBodyLimit, parsers.FormParser):
    pass


class MultiPartParser(_WithinBodyLimit, parsers.MultiPartParser):
    pass
