"""Every outgoing OpenAI call goes through here: the pooled client, retries and error mapping.

One `AsyncOpenAI` (on the SDK's aiohttp transport) per event loop and base URL, so requests share a
connection pool and TLS context instead of building both per request (that alone cost ~1 s of
first-byte latency under load in the reference measurements). The user's key and organization go
in each call's own headers (request_options), so no client is ever configured for one user.

Errors become `ApiError`s with messages that never quote the key (OpenAI's own 401 message does).
"""

import asyncio
import logging
import re
import weakref
from typing import Any

import aiohttp
import httpx2
import openai
from django.conf import settings
from openai._response import AsyncAPIResponse

from profiles.services import OpenAICredentials

from .errors import ApiError

logger = logging.getLogger(__name__)

# Retried before anything is relayed: the request never reached a model, or the server failed.
RETRY_STATUSES = frozenset({500, 502, 503, 504})
RETRY_BASE_DELAY = 0.25

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, openai.AsyncOpenAI]]" = (
    weakref.WeakKeyDictionary()
)


def pooled_client() -> openai.AsyncOpenAI:
    """The process's client for the running loop (one loop per uvicorn worker; tests have several)."""
    loop = asyncio.get_running_loop()
    per_loop = _clients.setdefault(loop, {})
    base_url = settings.OPENAI_BASE_URL
    client = per_loop.get(base_url)
    if client is None:
        timeout = httpx2.Timeout(settings.OPENAI_TIMEOUT, connect=settings.OPENAI_CONNECT_TIMEOUT)
        client = openai.AsyncOpenAI(
            api_key="per-request",  # replaced by every call's Authorization header (request_options)
            base_url=base_url,
            timeout=timeout,
            max_retries=0,  # retries are ours: only before streaming, never for quota errors
            http_client=openai.DefaultAioHttpClient(
                timeout=timeout,
                limits=httpx2.Limits(
                    max_connections=settings.OPENAI_MAX_CONNECTIONS, max_keepalive_connections=200
                ),
            ),
        )
        per_loop[base_url] = client
    return client


def request_options(credentials: OpenAICredentials) -> dict[str, Any]:
    """Per-call options that carry one user's credentials on the shared client.

    Not `with_options(api_key=...)`: that copies the client for every request (~0.15 ms), and each
    copy works out its platform headers again in a worker thread on its first request: a thread hop
    per request. These headers win over the client's own (the SDK merges per-call headers last).
    """
    headers = {"Authorization": f"Bearer {credentials.api_key}"}
    if credentials.organization:
        headers["OpenAI-Organization"] = credentials.organization
    return {
        "extra_headers": headers,
        # Per call, so a settings change applies without rebuilding the pool.
        "timeout": httpx2.Timeout(settings.OPENAI_TIMEOUT, connect=settings.OPENAI_CONNECT_TIMEOUT),
    }


async def open_chat_completion(*, credentials: OpenAICredentials, params: dict[str, Any]) -> AsyncAPIResponse[Any]:
    """POST /chat/completions and wait for the response head; the body is left unread.

    The caller owns the returned response and must `await response.close()`. Raises ApiError.
    """
    completions = pooled_client().chat.completions.with_streaming_response
    options = request_options(credentials)

    async def send() -> AsyncAPIResponse[Any]:
        # Every field travels verbatim in extra_body (the /v1 endpoint passes unknown ones on too),
        # and the SDK's typed parameters are omitted: it would walk each of them against its type
        # annotations on every call and send the same JSON. That costs ~0.13 ms of CPU per message
        # (2.7 ms for a 21-message conversation), and `model` alone ~80 µs: its annotation, a
        # Literal of ~90 model names, is hashed over and over.
        return await completions.create(model=openai.omit, messages=openai.omit, extra_body=params,
                                        **options).__aenter__()

    return await _with_retries(send, credentials)


async def get_models(*, credentials: OpenAICredentials) -> AsyncAPIResponse[Any]:
    """GET /models; the caller reads and closes the response. Raises ApiError."""

    async def send() -> AsyncAPIResponse[Any]:
        models = pooled_client().models.with_streaming_response
        return await models.list(**request_options(credentials)).__aenter__()

    return await _with_retries(send, credentials)


async def _with_retries(send: Any, credentials: OpenAICredentials) -> AsyncAPIResponse[Any]:
    attempt = 0
    while True:
        try:
            return await send()
        except openai.APIError as exc:
            retryable = isinstance(exc, openai.APIConnectionError) and not _is_timeout(exc)
            retryable = retryable or (isinstance(exc, openai.APIStatusError) and exc.status_code in RETRY_STATUSES)
            if retryable and attempt < settings.OPENAI_MAX_RETRIES:
                attempt += 1
                await asyncio.sleep(RETRY_BASE_DELAY * 2 ** (attempt - 1))
                continue
            raise map_upstream_error(exc, credentials=credentials) from None


_KEY_LIKE = re.compile(r"\b(sk|sess|org)-[A-Za-z0-9_*\-.]{2,}")


def redact(text: str, *, credentials: OpenAICredentials | None = None) -> str:
    """Remove anything that looks like a key (OpenAI quotes partial keys in some messages)."""
    if credentials is not None and credentials.api_key:
        text = text.replace(credentials.api_key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _upstream_error_fields(exc: openai.APIStatusError) -> tuple[str, str]:
    body = exc.body if isinstance(exc.body, dict) else {}
    code = body.get("code") or body.get("type") or ""
    message = body.get("message") if isinstance(body.get("message"), str) else ""
    return str(code), message


def _is_timeout(exc: BaseException) -> bool:
    """A real timeout, as opposed to a refused connection.

    The SDK's aiohttp transport maps every aiohttp connection error, a refused connection included,
    to a connect *timeout*; the original aiohttp error is still on the cause chain.
    """
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, aiohttp.ClientConnectorError):
            return False
        if isinstance(cause, (TimeoutError, aiohttp.ServerTimeoutError)):
            return True
        cause = cause.__cause__ or cause.__context__
    return isinstance(exc, openai.APITimeoutError)


async def aclose_pooled_clients() -> None:
    """Close the running loop's clients (tests and shutdown hooks; uvicorn workers just exit)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.close()


def map_upstream_error(exc: openai.APIError, *, credentials: OpenAICredentials | None = None) -> ApiError:
    if isinstance(exc, openai.APIConnectionError) and _is_timeout(exc):
        return ApiError(504, "openai_timeout", "OpenAI did not answer in time. Please try again.")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(502, "openai_unreachable", "Could not reach OpenAI. Please try again in a moment.")
    if not isinstance(exc, openai.APIStatusError):
        return ApiError(502, "openai_error", "OpenAI returned a response we could not use.")

    status = exc.status_code
    code, upstream_message = _upstream_error_fields(exc)
    if status == 401:
        # OpenAI's message quotes part of the key: never pass it on.
        return ApiError(400, "openai_api_key_invalid",
                        "OpenAI API Key is incorrect. Please fix it in your profile settings.")
    if status == 403:
        return ApiError(400, "openai_permission_denied",
                        "OpenAI refused this key for the organization or project it was used with. "
                        "Check the organization ID (or leave it empty) in your profile settings.")
    if status == 429 and code == "insufficient_quota":
        return ApiError(429, "openai_quota_exceeded",
                        "Your OpenAI account has run out of quota. Check your plan and billing details at "
                        "https://platform.openai.com/account/billing, or use another key in your profile settings.")
    if status == 429:
        retry_after = exc.response.headers.get("retry-after")
        wait = f" Try again in {retry_after} seconds." if retry_after else " Try again shortly."
        return ApiError(429, "openai_rate_limited", "OpenAI rate limit reached for your key." + wait,
                        headers={"Retry-After": retry_after} if retry_after else {})
    if status == 404:
        detail = redact(upstream_message, credentials=credentials) or "The model was not found."
        return ApiError(400, "openai_model_not_found", f"Model not available with your key: {detail}")
    if status in (400, 422):
        detail = redact(upstream_message, credentials=credentials) or "OpenAI rejected the request."
        return ApiError(400, "openai_bad_request", detail)
    logger.warning("OpenAI answered %s (%s)", status, code or "no code")
    return ApiError(502, "openai_error", f"OpenAI returned an error (HTTP {status}). Please try again.")
