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


def limit_request_body(app: ASGIApp) -> ASGIApp:
    async def application(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        limit: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        declared = any(name == b"content-length" for name, _ in scope["headers"])
        received = 0
        ended = cut = False

        async def receive_within_limit() -> dict[str, Any]:
            nonlocal received, ended, cut
            if cut:
                # The rest of a body cut short is never read: the server stops reading the socket
                # (back-pressure on the client) and closes the connection once the 413 is sent.
                # Django cancels this wait when its response is done.
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
            if cut and message["type"] == "http.response.start":
                # Otherwise the server would read (and drop) the rest of the body after answering,
                # to keep the connection alive: an endless body would be read to its end.
                message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        return await app(scope, receive_within_limit, send_closing_if_cut)

    return application
