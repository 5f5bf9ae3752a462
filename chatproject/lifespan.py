"""ASGI lifespan around Django (which ignores it): close the pooled upstream clients on shutdown."""

from collections.abc import Awaitable, Callable
from typing import Any

from upstream.client import aclose_pooled_clients

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
                await aclose_pooled_clients()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return application
