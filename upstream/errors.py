"""Upstream failures as the ApiErrors our clients get: the one place they are worded.

Messages never quote the key: OpenAI's own 401 message does, and some others quote part of it.
"""

import logging
import re

import httpx2
import openai
from django.conf import settings

from core.errors import ApiError

from .credentials import OpenAICredentials
from .host_guard import refused_error
from .sdk_internals import host_refusal, is_timeout

logger = logging.getLogger(__name__)

_KEY_LIKE = re.compile(r"\b(sk|sess|org)-[A-Za-z0-9_*\-.]{2,}")


def redact(text: str, *, credentials: OpenAICredentials | None = None) -> str:
    """Remove anything that looks like a key (OpenAI quotes partial keys in some messages)."""
    if credentials is not None and credentials.api_key:
        text = text.replace(credentials.api_key, "[redacted]")
    return _KEY_LIKE.sub("[redacted]", text)


def _upstream_error_fields(exc: openai.APIStatusError) -> tuple[str, str]:
    body = exc.body if isinstance(exc.body, dict) else {}
    code = body.get("code") or body.get("type") or ""
    message = body.get("message")
    return str(code), message if isinstance(message, str) else ""


def map_upstream_error(exc: openai.APIError, *, credentials: OpenAICredentials | None = None) -> ApiError:
    """An error before the answer began (no response, or an error status)."""
    refusal = host_refusal(exc)
    if refusal is not None:  # the SSRF guard at connection time: nothing was sent
        return refused_error(refusal, source=credentials.source if credentials else "own")
    if isinstance(exc, openai.APIConnectionError) and is_timeout(exc):
        return ApiError(504, "openai_timeout", "OpenAI did not answer in time. Please try again.")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(502, "openai_unreachable", "Could not reach OpenAI. Please try again in a moment.")
    if not isinstance(exc, openai.APIStatusError):
        return ApiError(502, "openai_error", "OpenAI returned a response we could not use.")

    status = exc.status_code
    code, upstream_message = _upstream_error_fields(exc)
    if status == 401:
        # OpenAI's message quotes part of the key: never pass it on.
        return ApiError(
            400,
            "openai_api_key_invalid",
            "OpenAI API Key is incorrect. Please fix it in your profile settings.",
        )
    if status == 403:
        return ApiError(
            400,
            "openai_permission_denied",
            "OpenAI refused this key for the organization or project it was used with. "
            "Check the organization ID (or leave it empty) in your profile settings.",
        )
    if status == 429 and code == "insufficient_quota":
        return ApiError(
            429,
            "openai_quota_exceeded",
            "Your OpenAI account has run out of quota. Check your plan and billing details at "
            "https://platform.openai.com/account/billing, or use another key in your profile settings.",
        )
    if status == 429:
        retry_after = exc.response.headers.get("retry-after")
        wait = f" Try again in {retry_after} seconds." if retry_after else " Try again shortly."
        return ApiError(
            429,
            "openai_rate_limited",
            "OpenAI rate limit reached for your key." + wait,
            headers={"Retry-After": retry_after} if retry_after else {},
        )
    if status == 404:
        detail = redact(upstream_message, credentials=credentials) or "The model was not found."
        return ApiError(400, "openai_model_not_found", f"Model not available with your key: {detail}")
    if status in (400, 422):
        detail = redact(upstream_message, credentials=credentials) or "OpenAI rejected the request."
        return ApiError(400, "openai_bad_request", detail)
    logger.warning("OpenAI answered %s (%s)", status, code or "no code")
    return ApiError(502, "openai_error", f"OpenAI returned an error (HTTP {status}). Please try again.")


def broken_off(exc: BaseException) -> ApiError:
    """The upstream failed after its response began (mid-body or mid-stream)."""
    if isinstance(exc, (httpx2.TimeoutException, TimeoutError)):  # through the SDK, or from aiohttp directly
        return ApiError(
            504,
            "openai_timeout",
            f"OpenAI stopped sending the answer (nothing for "
            f"{settings.OPENAI_TIMEOUT:g} seconds). Please try again.",
        )
    return ApiError(
        502,
        "openai_interrupted",
        "The answer from OpenAI broke off before it was complete. Please try again.",
    )
