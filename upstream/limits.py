"""A per-user cap on concurrent streams, shared by every worker process through Django's cache.

An open stream holds one of its user's MAX_STREAMS_PER_USER slots: the cache keys
`streams:<user id>:<n>`. A slot is taken with `cache.add` (atomic: SET NX on Redis, under a lock
in local memory) and deleted when the stream ends, however it ends. Each slot also expires on its
own after STREAM_SLOT_TTL seconds, so a worker that dies mid-stream cannot lock its user out for
longer than that. (A single counter with incr/decr cannot do this: its one TTL either runs out
under live streams, resetting the count, or is refreshed by them and never runs out.)

The slot is held by the stream that took it (stream.UpstreamStream) and given back when that
stream is closed, however it ends.

Local memory (the default) counts per process; set REDIS_URL to share the count between workers.
If the cache cannot be reached the stream is allowed (logged): the cap protects the service, it
must not take it down.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache

from core.errors import ApiError

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
