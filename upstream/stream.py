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
when the request is over (tests/test_limits.py shows the case the owner cannot see).

What a stream did is kept on it as it goes (`record`: timings, how it ended, the upstream's usage
figures), filled in by the owner and the relay's transforms, and handed to the `when_closed`
callbacks once everything is closed: that is where usage records and saved answers hang off, so
no endpoint has to track a stream's end itself.
"""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import AsyncExitStack
from contextvars import ContextVar
from typing import Any

import aiohttp
import httpx2
import openai

from .client import UpstreamReply, client_on, request_options, with_retries
from .credentials import OpenAICredentials
from .errors import broken_off
from .limits import acquire_stream_slot
from .record import CLIENT_GONE, COMPLETE, STOPPED, UPSTREAM_ERROR, StreamRecord
from .sdk_internals import network_body

logger = logging.getLogger(__name__)

# A relay transform (relay.py): the body's network reads in, what the client gets out; it notes in the
# record what it sees (usage, how much text).
Transform = Callable[[AsyncIterator[bytes], StreamRecord], AsyncIterator[bytes]]


class UpstreamStream:
    """An open upstream call and everything it holds. Iterate it (after relay()) or read_reply() it."""

    __slots__ = (
        "_callbacks",
        "_closed",
        "_out",
        "_stack",
        "chunks",
        "headers",
        "log_context",
        "record",
        "status_code",
    )

    def __init__(self, log_context: str) -> None:
        self._stack = AsyncExitStack()  # closed last to first: the upstream response, then the slot
        self._out: AsyncIterator[bytes] | None = None
        self._closed = False
        self._callbacks: list[Callable[[StreamRecord], None]] = []
        self.record = StreamRecord()
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
        client = await client_on(self._stack, credentials)  # where the credentials say
        completions = client.chat.completions.with_streaming_response
        options = request_options(credentials)
        sdk = AsyncExitStack()
        self._stack.push_async_exit(sdk)

        def send() -> Any:
            # Every field travels verbatim in extra_body (the /v1 endpoint passes unknown ones on too),
            # and the SDK's typed parameters are omitted: it would walk each of them against its type
            # annotations on every call and send the same JSON. That costs ~0.13 ms of CPU per message
            # (2.7 ms for a 21-message conversation), and `model` alone ~80 µs: its annotation, a
            # Literal of ~90 model names, is hashed over and over. (Hence the `type: ignore`: the SDK's
            # overloads require model and messages.)
            return sdk.enter_async_context(
                completions.create(  # type: ignore[call-overload]
                    model=openai.omit, messages=openai.omit, extra_body=params, **options
                )
            )

        self.record.called_upstream = True
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
        self._out = transform(self.chunks, self.record)
        return self

    def __aiter__(self) -> "UpstreamStream":
        return self

    def when_closed(self, callback: Callable[[StreamRecord], None]) -> None:
        """Call `callback(record)` once the stream is closed, however it ended. It runs on the event
        loop as the stream closes: anything slow (a database write) it must hand to a task of its own.
        An exception in it is logged, never raised."""
        self._callbacks.append(callback)

    async def __anext__(self) -> bytes:
        if self._out is None:
            raise TypeError("relay(transform) first")
        try:
            chunk = await anext(self._out)
        except StopAsyncIteration:
            self._ended(COMPLETE)
            await self.aclose()
            raise
        except asyncio.CancelledError:
            logger.info("client went away; upstream stream cancelled %s", self.log_context)
            self._ended(CLIENT_GONE)
            await self.aclose()
            raise
        except BaseException:  # a failure (the relay has logged it)
            self._ended(UPSTREAM_ERROR)
            await self.aclose()
            raise
        if self.record.first_chunk is None:
            self.record.first_chunk = time.monotonic()
        return chunk

    def _ended(self, outcome: str) -> None:
        """Note how the stream ended, unless it already has (a transform, or stop(), said first)."""
        if not self.record.outcome:
            self.record.outcome = outcome

    async def stop(self) -> None:
        """End the stream on purpose (the user pressed Stop): the upstream request is cancelled, and
        the record says `stopped`. Whoever is iterating the stream sees it end."""
        self._ended(STOPPED)
        await self.aclose()

    async def read_reply(self) -> UpstreamReply:
        """The whole body (a non-streamed answer). Raises ApiError if it breaks off."""
        try:
            content = b"".join([chunk async for chunk in self.chunks])
        except (aiohttp.ClientError, httpx2.HTTPError, TimeoutError) as exc:
            self._ended(UPSTREAM_ERROR)
            raise broken_off(exc) from None
        self.record.first_chunk = time.monotonic()
        self._ended(COMPLETE)
        return UpstreamReply(self.status_code, self.headers, content)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._ended(CLIENT_GONE)  # closed before it ended: abandoned, or never read
        self.record.ended = time.monotonic()
        try:
            if isinstance(self._out, AsyncGenerator):
                await self._out.aclose()
        finally:
            await self._stack.aclose()
            for callback in self._callbacks:
                try:
                    callback(self.record)
                except Exception:
                    logger.exception("a when_closed callback failed %s", self.log_context)

    async def __aenter__(self) -> "UpstreamStream":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


async def open_stream(
    *,
    user_id: int,
    credentials: OpenAICredentials,
    params: dict[str, Any],
    log_context: str = "",
    when_closed: Callable[[StreamRecord], None] | None = None,
) -> UpstreamStream:
    """POST /chat/completions for this user and wait for the response head. Raises ApiError
    (too_many_streams, or the upstream's error); on success the caller owns the stream.

    `when_closed` (see UpstreamStream.when_closed) is called for a call that fails to open too.
    """
    stream = UpstreamStream(log_context)
    if when_closed is not None:
        stream.when_closed(when_closed)
    try:
        await stream._open(user_id=user_id, credentials=credentials, params=params)
    except BaseException as exc:  # an upstream error, or the client left while we waited
        stream._ended(CLIENT_GONE if isinstance(exc, asyncio.CancelledError) else UPSTREAM_ERROR)
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
