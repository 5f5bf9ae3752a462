"""Every outgoing OpenAI call goes through here: the pooled client, per-call credentials and retries.

One `AsyncOpenAI` (on the SDK's aiohttp transport) per event loop and base URL, so requests share a
connection pool and TLS context instead of building both per request (that alone cost ~1 s of
first-byte latency under load in the reference measurements). The user's key and organization go
in each call's own headers (request_options), so no client is ever configured for one user.

Every call goes where its credentials say (`client_for`): the operator's OPENAI_BASE_URL, trusted,
or a base URL a user or staff chose, only ever through the SSRF guard (host_guard.py): checked
before each call, and at connection time by the client's own resolver. Clients for those URLs are
kept per loop in a bounded LRU (MAX_GUARDED_CLIENTS); an evicted one is closed as soon as the last
call using it ends.

Streams are opened by stream.open_stream, which owns them; this module answers whole replies
(GET /models) and the retry loop both use.
"""

import asyncio
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2
import openai
from django.conf import settings

from . import host_guard
from .credentials import OpenAICredentials
from .errors import broken_off, map_upstream_error
from .sdk_internals import guarded_http_client, host_refusal, is_timeout

# Retried before anything is relayed: the request never reached a model, or the server failed.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_BASE_DELAY = 0.25

# Clients for user and team base URLs kept per loop. Each holds its own connection pool and TLS
# context (tens of KiB, plus its idle connections), so the number is bounded; past it the least
# recently used goes. A deployment whose users share a handful of servers never evicts.
MAX_GUARDED_CLIENTS = 64

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, openai.AsyncOpenAI]]" = (
    weakref.WeakKeyDictionary()
)


@dataclass(slots=True)
class _Guarded:
    client: openai.AsyncOpenAI
    leases: int = 0  # calls using it now
    evicted: bool = False  # out of the LRU: closed when the last lease ends


_guarded: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, OrderedDict[str, _Guarded]]" = (
    weakref.WeakKeyDictionary()
)


def _timeout() -> openai.Timeout:
    return openai.Timeout(settings.OPENAI_TIMEOUT, connect=settings.OPENAI_CONNECT_TIMEOUT)


def pooled_client() -> openai.AsyncOpenAI:
    """The process's client for the running loop (one loop per uvicorn worker; tests have several)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    base_url = settings.OPENAI_BASE_URL
    client = per_loop.get(base_url)
    if client is None:
        client = _new_client(
            base_url,
            openai.DefaultAioHttpClient(
                timeout=_timeout(),
                limits=httpx2.Limits(
                    max_connections=settings.OPENAI_MAX_CONNECTIONS, max_keepalive_connections=200
                ),
            ),
        )
        per_loop[base_url] = client
    return client


def _new_client(base_url: str, http_client: httpx2.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key="per-request",  # replaced by every call's Authorization header (request_options)
        base_url=base_url,
        timeout=_timeout(),
        max_retries=0,  # retries are ours: only before streaming, never for quota errors
        http_client=http_client,
    )


@asynccontextmanager
async def client_for(credentials: OpenAICredentials) -> AsyncIterator[openai.AsyncOpenAI]:
    """The pooled client for where these credentials go, held for the duration of the block.

    A user or team base URL is checked first (scheme, and the address of an IP literal: aiohttp
    connects to a literal without asking the resolver); names are checked by the client's resolver
    at connection time. Raises ApiError 400 openai_base_url_refused."""
    base_url = credentials.base_url
    if base_url is None:
        yield pooled_client()
        return
    try:
        host_guard.check_literal(base_url)
    except host_guard.HostRefused as refusal:
        raise host_guard.refused_error(refusal, source=credentials.source) from None
    guarded = await _lease(base_url)
    try:
        yield guarded.client
    finally:
        guarded.leases -= 1
        if guarded.evicted and guarded.leases == 0:
            await guarded.client.close()


async def client_on(stack: AsyncExitStack, credentials: OpenAICredentials) -> openai.AsyncOpenAI:
    """client_for, held until `stack` closes. The operator's base URL takes no lease and no check:
    the context manager alone costs ~11 µs per call, measured, for nothing there."""
    if credentials.base_url is None:
        return pooled_client()
    return await stack.enter_async_context(client_for(credentials))


async def _lease(base_url: str) -> _Guarded:
    per_loop = _guarded.setdefault(asyncio.get_running_loop(), OrderedDict())
    guarded = per_loop.get(base_url)
    if guarded is not None:
        per_loop.move_to_end(base_url)
        guarded.leases += 1
        return guarded
    http_client = guarded_http_client(timeout=_timeout(), max_connections=settings.OPENAI_MAX_CONNECTIONS)
    # Leased at once, before the awaits below: nothing can evict and close it under us meanwhile.
    guarded = per_loop[base_url] = _Guarded(_new_client(base_url, http_client), leases=1)
    idle: list[_Guarded] = []
    while len(per_loop) > MAX_GUARDED_CLIENTS:
        _, oldest = per_loop.popitem(last=False)
        oldest.evicted = True
        if oldest.leases == 0:
            idle.append(oldest)
    for evicted in idle:
        await evicted.client.close()
    return guarded


def request_options(credentials: OpenAICredentials) -> dict[str, Any]:
    """Per-call options that carry one user's credentials on the shared client.

    Not `with_options(api_key=...)`: that copies the client for every request (~0.15 ms), and each
    copy works out its platform headers again in a worker thread on its first request: a thread hop
    per request. These headers win over the client's own (the SDK merges per-call headers last).
    """
    headers = {"Authorization": f"Bearer {credentials.api_key}"}
    if credentials.organization:
        headers["OpenAI-Organization"] = credentials.organization
    # The timeout per call, so a settings change applies without rebuilding the pool.
    return {"extra_headers": headers, "timeout": _timeout()}


async def with_retries(
    send: Callable[[], Awaitable[openai.AsyncAPIResponse[Any]]], credentials: OpenAICredentials
) -> openai.AsyncAPIResponse[Any]:
    """`send()` until it has a response head: connection failures and 5xx are retried up to
    OPENAI_MAX_RETRIES times with backoff (429s never: a quota error would fail again). Raises ApiError."""
    attempt = 0
    while True:
        try:
            return await send()
        except openai.APIError as exc:
            retryable = (
                isinstance(exc, openai.APIConnectionError) and not is_timeout(exc) and not host_refusal(exc)
            )
            retryable = retryable or (
                isinstance(exc, openai.APIStatusError) and exc.status_code in RETRY_STATUSES
            )
            if retryable and attempt < settings.OPENAI_MAX_RETRIES:
                attempt += 1
                await asyncio.sleep(RETRY_BASE_DELAY * 2 ** (attempt - 1))
                continue
            raise map_upstream_error(exc, credentials=credentials) from None


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A whole upstream answer, as it came: status, headers and body bytes."""

    status_code: int
    headers: httpx2.Headers
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/json")


async def read_reply(response: openai.AsyncAPIResponse[Any]) -> UpstreamReply:
    """Read a response's whole body (the caller closes the response). Raises ApiError."""
    try:
        content = await response.read()
    except httpx2.HTTPError as exc:
        raise broken_off(exc) from None
    head = response.http_response
    return UpstreamReply(head.status_code, head.headers, content)


async def get_models(*, credentials: OpenAICredentials) -> UpstreamReply:
    """GET /models with these credentials. Raises ApiError (an invalid key is openai_api_key_invalid)."""
    async with AsyncExitStack() as stack:
        models = (await client_on(stack, credentials)).models.with_streaming_response
        response = await with_retries(
            lambda: stack.enter_async_context(models.list(**request_options(credentials))), credentials
        )
        return await read_reply(response)


async def aclose_pooled_clients() -> None:
    """Close the running loop's clients (tests and shutdown hooks; uvicorn workers just exit)."""
    loop = asyncio.get_running_loop()
    for client in _clients.pop(loop, {}).values():
        await client.close()
    for guarded in _guarded.pop(loop, OrderedDict()).values():
        guarded.evicted = True  # one still leased is closed when its call ends
        if guarded.leases == 0:
            await guarded.client.close()
