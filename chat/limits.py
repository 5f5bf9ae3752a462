"""A per-user cap on concurrent streams, shared by every worker process through Django's cache.

An open stream holds one of its user's MAX_STREAMS_PER_USER slots: the cache keys
`streams:<user id>:<n>`. A slot is taken with `cache.add` (atomic: SET NX on Redis, under a lock
in local memory) and deleted when the stream ends, however it ends. Each slot also expires on its
own after STREAM_SLOT_TTL seconds, so a worker that dies mid-stream cannot lock its user out for
longer than that. (A single counter with incr/decr cannot do this: its one TTL either runs out
under live streams, resetting the count, or is refreshed by them and never runs out.)

The response body holding a slot is a ReleasingStream, closed (upstream connection and slot) when
it ends, fails or is cancelled, and at the latest when its request is over: closing_abandoned_streams,
around the ASGI app, catches the bodies Django abandons when a client leaves at the wrong moment.

Local memory (the default) counts per process; set REDIS_URL to share the count between workers.
If the cache cannot be reached the stream is allowed (logged): the cap protects the service, it
must not take it down.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

from .errors import ApiError

logger = logging.getLogger(__name__)

KEY_PREFIX = "streams"


def too_many_streams(limit: int) -> ApiError:
    return ApiError(
        429,
        "too_many_streams",
        f"Too many answers streaming at once: at most {limit} per user. "
        "Wait for one to finish (or stop it), then try again.",
    )


def _in_process() -> bool:
    # Local memory is a dict behind a lock: no I/O, so no thread hop. Redis is a network call.
    return isinstance(caches["default"], (LocMemCache, DummyCache))


async def _call(fn: Callable[..., Any], *args: Any) -> Any:
    if _in_process():
        return fn(*args)
    return await sync_to_async(fn, thread_sensitive=False)(*args)


def _slot_keys(user_id: int, limit: int) -> list[str]:
    return [f"{KEY_PREFIX}:{user_id}:{n}" for n in range(limit)]


def _take_slot(user_id: int, limit: int, token: str, ttl: int) -> str | None:
    cache = caches["default"]
    keys = _slot_keys(user_id, limit)
    held = cache.get_many(keys)
    for key in keys:
        if key not in held and cache.add(key, token, timeout=ttl):
            return key
    return None


def _free_slot(key: str, token: str) -> None:
    cache = caches["default"]
    # Only our own: a slot that outlived its TTL may have been taken by another stream since.
    if cache.get(key) == token:
        cache.delete(key)


class StreamSlot:
    """One held slot (or none, when the cap is off or the cache is down). release() is idempotent."""

    __slots__ = ("key", "token")

    def __init__(self, key: str | None, token: str = "") -> None:
        self.key = key
        self.token = token

    async def release(self) -> None:
        key, self.key = self.key, None
        if key is None:
            return
        try:
            await _call(_free_slot, key, self.token)
        except Exception:  # the slot expires on its own
            logger.warning("could not release stream slot %s", key, exc_info=True)

    def held_while(self, stream: AsyncIterator[bytes]) -> "ReleasingStream":
        """`stream` (primed: see relay.text_deltas), for the response: see ReleasingStream."""
        return ReleasingStream(stream, self)


class ReleasingStream:
    """A response body that closes its upstream stream and frees its slot exactly once: when it
    ends or fails, or at the latest when the request is over (see closing_abandoned_streams).
    """

    __slots__ = ("_closed", "_slot", "_stream")

    def __init__(self, stream: AsyncIterator[bytes], slot: StreamSlot) -> None:
        self._stream = stream
        self._slot = slot
        self._closed = False
        abandoned = _request_streams.get()
        if abandoned is not None:
            abandoned.append(self)

    def __aiter__(self) -> "ReleasingStream":
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._stream)
        except BaseException:  # the end (StopAsyncIteration), a failure, or cancellation
            await self.aclose()
            raise

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._stream.aclose()  # type: ignore[attr-defined]  # an async generator
        finally:
            await self._slot.release()


# The response bodies made while serving the current request (set per request by the ASGI app).
_request_streams: ContextVar[list[ReleasingStream] | None] = ContextVar("request_streams", default=None)


def closing_abandoned_streams(app: Any) -> Any:
    """ASGI middleware: once a request is over, close any response body it left open.

    Django does not always close the body of a response that never finished: when the client
    leaves while a chunk is being sent, the body's iterator is abandoned, and when it leaves while
    the middleware are still handling the response, the response itself is dropped. Either way the
    upstream connection and the stream slot would wait for the garbage collector.
    """

    async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        streams: list[ReleasingStream] = []
        token = _request_streams.set(streams)
        try:
            await app(scope, receive, send)
        finally:
            _request_streams.reset(token)
            for stream in streams:
                await stream.aclose()  # nothing to do for those that ended

    return application


async def acquire_stream_slot(*, user_id: int) -> StreamSlot:
    """A slot for one more stream of this user, or ApiError(429 too_many_streams)."""
    limit = settings.MAX_STREAMS_PER_USER
    if limit <= 0:
        return StreamSlot(None)
    token = secrets.token_hex(8)
    try:
        key = await _take_slot_async(user_id, limit, token)
    except Exception:
        logger.warning("stream cap unavailable (cache error); allowing the stream", exc_info=True)
        return StreamSlot(None)
    if key is None:
        raise too_many_streams(limit)
    return StreamSlot(key, token)


async def _take_slot_async(user_id: int, limit: int, token: str) -> str | None:
    if _in_process():
        return _take_slot(user_id, limit, token, settings.STREAM_SLOT_TTL)
    taking = asyncio.ensure_future(_call(_take_slot, user_id, limit, token, settings.STREAM_SLOT_TTL))
    try:
        return await asyncio.shield(taking)
    except asyncio.CancelledError:
        # The client left while a worker thread was taking the slot. The thread carries on
        # regardless, so give back whatever it took rather than leave it to the TTL.
        with contextlib.suppress(Exception):
            await StreamSlot(await taking, token).release()
        raise
