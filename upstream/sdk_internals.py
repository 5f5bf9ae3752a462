"""The one module that relies on the OpenAI SDK's internals and on its transport (httpx2, aiohttp).

Each reach below is here because public API costs a measured amount; each is asserted by
tests/test_dependency_contracts.py, so an upgrade that moves it fails a test instead of silently
switching the relay to its slow path. Versions are locked (requirements.lock): an upgrade is a
deliberate `make lock`, then `make test` and `make bench`.

1. `network_body`: the aiohttp response under the SDK's aiohttp transport
   (`http_response.stream._stream._aiohttp_response`). Reading it directly skips httpx2's four
   generator layers (~4 µs per chunk, an eighth of the relay's CPU) and lets the SDK's wrappers go
   once the head is in: its response, httpx2's request and response with their headers, the request
   options with the whole conversation (~10 KiB per open stream of ~60 for a short chat, more for a
   long one). Without it: `http_response.aiter_bytes()` and the SDK's `close()`, which is what a
   compressed body (content-encoding) gets anyway.
2. `is_timeout`: the SDK's aiohttp transport reports every aiohttp connection error, a refused
   connection included, as a connect *timeout*; the original aiohttp error is still on the cause
   chain. Without it an unreachable upstream would answer 504 (timeout) instead of 502.
3. `guarded_http_client`: the SDK's aiohttp client over a ClientSession of ours, whose connector
   resolves names through host_guard.GuardedResolver (the SSRF check at connection time, for user
   and team base URLs). The SDK has no public way to hand its aiohttp transport a session, so the
   vendored transport (`openai._vendor.httpx_aiohttp.AiohttpTransport(client=...)`) is built here
   and passed as httpx2's public `transport=`. Without it: no connection-time check, only the one
   on save (DNS rebinding would get through).
4. `host_refusal`: a refusal at connection time comes back, like any connection failure, as the
   SDK's connection error with our HostRefused on its cause chain (as in 2.). Without it the user
   would hear "could not reach the server" (after retries) instead of why it was refused.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2
import openai
from openai._vendor.httpx_aiohttp import AiohttpTransport

from .host_guard import GuardedResolver, HostRefused


@dataclass(frozen=True, slots=True)
class NetworkBody:
    """A response body taken over from the SDK: its network reads, each whole, and how to close it."""

    chunks: AsyncIterator[bytes]
    aclose: Callable[[], Awaitable[None]]


def network_body(response: openai.AsyncAPIResponse[Any]) -> NetworkBody | None:
    """The body straight from the aiohttp response under the SDK, or None where that is not possible
    (another transport, or a body that needs decoding): then read and close it through the SDK.

    From here on the caller closes the body with `aclose()` and drops the SDK's response without
    closing it: the SDK's close would do exactly what `aclose()` does (its transport's stream exits
    the aiohttp response: release(), then wait_for_close()).
    """
    http_response = response.http_response
    stream = getattr(http_response.stream, "_stream", None)  # httpx2's BoundAsyncStream wraps the transport's
    aiohttp_response = getattr(stream, "_aiohttp_response", None)
    if (
        not isinstance(aiohttp_response, aiohttp.ClientResponse)
        or "content-encoding" in http_response.headers
    ):
        return None

    async def aclose() -> None:
        # release() closes the connection if the body was not read to its end (the upstream then
        # stops generating), or returns it to the pool if it was.
        aiohttp_response.release()
        await aiohttp_response.wait_for_close()

    return NetworkBody(aiohttp_response.content.iter_any(), aclose)


def is_timeout(exc: BaseException) -> bool:
    """A real timeout, as opposed to a refused connection (see 2. above)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectorError):
            return False
        if isinstance(cause, (TimeoutError, aiohttp.ServerTimeoutError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, openai.APITimeoutError)


def guarded_http_client(*, timeout: openai.Timeout, max_connections: int) -> httpx2.AsyncClient:
    """The SDK's aiohttp client (as `openai.DefaultAioHttpClient` makes it) for a user or team base
    URL: names resolved through GuardedResolver, redirects not followed (aiohttp's are off in the
    transport; httpx2's, which the SDK turns on by default, are turned off here), and no proxy from
    the environment (a proxy would resolve the name itself, past the check)."""
    limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=200)

    def session() -> aiohttp.ClientSession:  # called by the transport on its first request, on the loop
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(),
            limit=max_connections,
            keepalive_timeout=limits.keepalive_expiry,
            ssl=httpx2.create_ssl_context(),
        )
        return aiohttp.ClientSession(connector=connector)

    return openai.DefaultAioHttpClient(
        timeout=timeout,
        limits=limits,
        follow_redirects=False,
        trust_env=False,
        transport=AiohttpTransport(client=session, limits=limits, trust_env=False),
    )


def host_refusal(exc: BaseException) -> HostRefused | None:
    """The guard's refusal behind an SDK connection error, if that is what it was (see 4. above)."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, HostRefused):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None
