"""ASGI lifespan around Django (which ignores it): on shutdown, write the usage records still queued
and the last writes of answers whose clients went away (conversations/streaming.py), and close the
pooled upstream clients."""

from collections.abc import Awaitable, Callable
from typing import Any

from conversations.streaming import answers_drain
from upstream.client import aclose_pooled_clients
from usage.recording import usage_writes_settled

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Awaitable[None]]


def with_lifespan(app: ASGIApp) -> ASGIApp:
    async def application(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            return await app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await usage_writes_settled()  # the usage records of the last calls, still queued
                await answers_drain()  # saved answers' last writes, generated titles
                await aclose_pooled_clients()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
