"""ASGI middleware: request bodies stop at MAX_REQUEST_BYTES (DATA_UPLOAD_MAX_MEMORY_SIZE) as they arrive.

Django's ASGI handler reads the whole body into a temporary file before any view runs, whatever
its size, and checks the limit only when a view reads it. Here reading stops one byte past the
limit and the body is ended early; the request then declares a Content-Length past the limit, so
the view's own body read raises RequestDataTooBig and each API answers 413 in its own error shape.

A body sent without Content-Length (chunked) gets one once it is complete, so DRF, which skips
parsing when there is no Content-Length, sees the body instead of silently ignoring it.
"""

import asyncio
from typing import Any

from django.conf import settings

from .lifespan import ASGIApp, Scope

# How much of an oversized body with a declared length is still read (and dropped) after the 413.
MAX_DRAIN_BYTES = 64 * 1024 * 1024

# Conversation imports (a ChatGPT conversations.json runs to tens of MiB) stop at IMPORT_MAX_BYTES
# instead; that view reads its body itself (conversations/import_body.py). The path is the one
# chatproject/urls.py gives it (tests/test_conversations_import.py checks they agree).
IMPORT_PATH = "/api/conversations/import/"


def body_limit_for(path: str) -> int | None:
    if path == IMPORT_PATH:
        return int(settings.IMPORT_MAX_BYTES)
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


def limit_request_body(app: ASGIApp) -> ASGIApp:
    async def application(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limit = body_limit_for(scope["path"])
        length = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        declared = length is not None
        drainable = (
            length is not None
            and limit is not None
            and length.isdigit()
            and int(length) - limit <= MAX_DRAIN_BYTES
        )
        received = 0
        ended = cut = False

        async def receive_within_limit() -> dict[str, Any]:
            nonlocal received, ended, cut
            if cut:
                # The rest of a body cut short is not read while the request is answered: the server
                # stops reading the socket (back-pressure on the client). Django cancels this wait
                # when its response is done; see send_closing_if_cut for what happens to the rest.
                await asyncio.Future()
            message = await receive()
            if ended:  # the disconnect notice Django waits for once the body is read
                return message
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            if limit is not None and received > limit:
                message = {"type": "http.request", "body": b"", "more_body": False}
                cut = True
            if not message.get("more_body", False):
                ended = True
                if not declared or (limit is not None and received > limit):
                    # Read by Django when it builds the request, which it does once the body has ended.
                    headers = [(n, v) for n, v in scope["headers"] if n != b"content-length"]
                    scope["headers"] = [*headers, (b"content-length", str(received).encode())]
            return message

        async def send_closing_if_cut(message: dict[str, Any]) -> None:
            if cut and message["type"] == "http.response.start" and not drainable:
                # After answering, the server reads (and drops) the rest of a body to keep the
                # connection alive: fine for a body of known, bounded size (the client then surely
                # gets its 413), not for an endless or huge one. Close instead; such a client may see
                # the connection reset rather than the 413.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        return await app(scope, receive_within_limit, send_closing_if_cut)

    return application
