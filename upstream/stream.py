"""One owner for each upstream stream, from open to close.

`open_stream()` takes the user's stream slot, sends the request (retried as client.with_retries
says) and waits for the response head, so an error that comes first still gets a real status. The
UpstreamStream it returns owns, until its one idempotent `aclose()`: the slot, the upstream
response, and the iterator the client's response reads. Every endpoint opens its upstream call
through `open_stream()`; a streamed answer is the stream itself, after `relay(transform)`: it
closes everything when it ends, fails or is cancelled.

The safety net: Django abandons a response body without closing it when the client leaves at the
wrong moment (mid-send it closes only its own wrapper around the body; while the response head is
being sent it drops the response). Each stream opened while serving a request is registered for
that request, and `closing_abandoned_streams` (around the ASGI app) closes whatever is still open
when the request is over (tests/test_limits.py shows both cases).
"""

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx2
import openai

from .client import UpstreamReply, pooled_client, request_options, with_retries
from .credentials import OpenAICredentials
from .errors import broken_off
from .limits import acquire_stream_slot
from .sdk_internals import network_body

logger = logging.getLogger(__name__)

Transform = Callable[[AsyncIterator[bytes]], AsyncIterator[bytes]]


class UpstreamStream:
    """An open upstream call and everything it holds. Iterate it (after relay()) or read_reply() it."""

    __slots__ = ("_closed", "_out", "_stack", "chunks", "headers", "log_context", "status_code")

    def __init__(self, log_context: str) -> None:
        self._stack = AsyncExitStack()  # closed last to first: the upstream response, then the slot
        self._out: AsyncIterator[bytes] | None = None
        self._closed = False
        self.log_context = log_context
        self.chunks: AsyncIterator[bytes]  # the body's network reads, each whole
        self.status_code = 0
        self.headers = httpx2.Headers()
        abandoned = _request_streams.get()
        if abandoned is not None:
            abandoned.append(self)

    async def _open(self, *, user_id: int, credentials: OpenAICredentials, params: dict[str, Any]) -> None:
        slot = await acquire_stream_slot(user_id=user_id)  # 429 past the per-user cap
        self._stack.push_async_callback(slot.release)
        completions = pooled_client().chat.completions.with_streaming_response
        options = request_options(credentials)
        sdk = AsyncExitStack()
        self._stack.push_async_exit(sdk)

        def send() -> Any:
            # Every field travels verbatim in extra_body (the /v1 endpoint passes unknown ones on too),
            # and the SDK's typed parameters are omitted: it would walk each of them against its type
            # annotations on every call and send the same JSON. That costs ~0.13 ms of CPU per message
            # (2.7 ms for a 21-message conversation), and `model` alone ~80 µs: its annotation, a
            # Literal of ~90 model names, is hashed over and over.
            return sdk.enter_async_context(
                completions.create(model=openai.omit, messages=openai.omit, extra_body=params, **options)
            )

        response = await with_retries(send, credentials)
        self.status_code = response.http_response.status_code
        self.headers = response.http_response.headers
        body = network_body(response)
        if body is None:  # read and closed through the SDK (a compressed body, another transport)
            self.chunks = response.http_response.aiter_bytes()
            return
        # The body is ours now: the SDK's response is let go without its close, which would only do
        # what body.aclose does (sdk_internals.network_body), and its wrappers with it.
        sdk.pop_all()
        self._stack.push_async_callback(body.aclose)
        self.chunks = body.chunks

    def relay(self, transform: Transform) -> "UpstreamStream":
        """Relay the body through `transform` (relay.py): iterating the stream yields what it yields."""
        self._out = transform(self.chunks)
        return self

    def __aiter__(self) -> "UpstreamStream":
        return self

    async def __anext__(self) -> bytes:
        if self._out is None:
            raise TypeError("relay(transform) first")
        try:
            return await anext(self._out)
        except asyncio.CancelledError:
            logger.info("client went away; upstream stream cancelled %s", self.log_context)
            await self.aclose()
            raise
        except BaseException:  # the end (StopAsyncIteration) or a failure
            await self.aclose()
            raise

    async def read_reply(self) -> UpstreamReply:
        """The whole body (a non-streamed answer). Raises ApiError if it breaks off."""
        try:
            content = b"".join([chunk async for chunk in self.chunks])
        except (aiohttp.ClientError, httpx2.HTTPError, TimeoutError) as exc:
            raise broken_off(exc) from None
        return UpstreamReply(self.status_code, self.headers, content)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if isinstance(self._out, AsyncGenerator):
                await self._out.aclose()
        finally:
            await self._stack.aclose()

    async def __aenter__(self) -> "UpstreamStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_stream(
    *, user_id: int, credentials: OpenAICredentials, params: dict[str, Any], log_context: str = ""
) -> UpstreamStream:
    """POST /chat/completions for this user and wait for the response head. Raises ApiError
    (too_many_streams, or the upstream's error); on success the caller owns the stream."""
    stream = UpstreamStream(log_context)
    try:
        await stream._open(user_id=user_id, credentials=credentials, params=params)
    except BaseException:  # an upstream error, or the client left while we waited
        await stream.aclose()
        raise
    return stream


# The streams opened while serving the current request (set per request by closing_abandoned_streams).
_request_streams: ContextVar[list[UpstreamStream] | None] = ContextVar("request_streams", default=None)


def closing_abandoned_streams(app: Any) -> Any:
    """ASGI middleware: once a request is over, close any upstream stream it left open (see above)."""

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        streams: list[UpstreamStream] = []
        token = _request_streams.set(streams)
        try:
            await app(scope, receive, send)
        finally:
            _request_streams.reset(token)
            for stream in streams:
                await stream.aclose()  # nothing to do for those that ended

    return application
