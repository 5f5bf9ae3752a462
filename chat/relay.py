"""Upstream SSE -> what our clients receive.

The relay works on bytes: lines are split on b"\\n", which never falls inside a UTF-8 sequence, and
each JSON event is parsed whole, so a multi-byte character split across network reads is never
split in the output. Everything that arrived in one network read goes out as one write: chunks
already waiting are coalesced, and nothing is held back waiting for more.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from openai._response import AsyncAPIResponse

logger = logging.getLogger(__name__)


class StreamInterrupted(Exception):
    """The upstream stream failed after the response began; the response is cut off on purpose."""


async def text_deltas(response: AsyncAPIResponse[Any], *, log_context: str = "") -> AsyncIterator[bytes]:
    """The content deltas of a chat completion stream, as UTF-8 text (chatbot-ui's body format).

    The first `yield` is an empty priming step taken by the view before the response starts, so the
    generator's `finally` (which releases the upstream connection) runs however the response ends:
    completed, failed, or cancelled by a client disconnect.
    """
    body = UpstreamBody(response)
    del response  # see UpstreamBody: the SDK's wrappers are not kept for the length of the stream
    try:
        yield b""
        buffer = b""
        async for chunk in body.chunks:
            buffer += chunk
            if b"\n" not in chunk:
                continue
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            pieces: list[str] = []
            try:
                finished = _collect_content(lines, pieces)
            except Exception:
                if pieces:  # what came before a bad event is still part of the answer
                    yield "".join(pieces).encode()
                raise
            if pieces:
                yield "".join(pieces).encode()
            if finished:
                return
        raise StreamInterrupted("the upstream stream ended without [DONE]")
    except asyncio.CancelledError:
        logger.info("client went away; upstream stream cancelled %s", log_context)
        raise
    except Exception as exc:
        # Re-raised so the server aborts the response without its final chunk: the client can
        # tell a truncated answer from a complete one.
        logger.warning("upstream stream failed mid-response %s: %s", log_context, type(exc).__name__)
        raise StreamInterrupted(type(exc).__name__) from None
    finally:
        await body.aclose()


def _collect_content(lines: list[bytes], pieces: list[str]) -> bool:
    """Append each event's content delta to `pieces`; True once [DONE] is seen."""
    for line in lines:
        if not line.startswith(b"data:"):
            continue  # blank separators, comments, "event:" lines
        data = line[5:].strip()
        if data == b"[DONE]":
            return True
        event = orjson.loads(data)  # malformed SSE raises: the stream cannot be trusted
        if "error" in event and event["error"]:
            raise StreamInterrupted("the upstream sent an error event")
        choices = event.get("choices")
        if choices:
            content = (choices[0].get("delta") or {}).get("content")
            if content:
                pieces.append(content)
    return False


async def sse_passthrough(
    response: AsyncAPIResponse[Any], *, error_event: Callable[[Exception], bytes], log_context: str = ""
) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes as they arrive, unparsed (the /v1 endpoint's body).

    Each network read goes out as one write: what arrived together stays together, nothing waits
    for more. Only the end is looked at: a stream that fails, or ends without `data: [DONE]`,
    gets `error_event(exc)` as its last event, so the client knows the answer is incomplete.
    Primed like text_deltas: the view takes the empty first step, so `finally` always runs.
    """
    body = UpstreamBody(response)
    del response  # see UpstreamBody
    try:
        yield b""
        tail = b""
        async for chunk in body.chunks:
            yield chunk
            tail = chunk[-_DONE_TAIL:] if len(chunk) >= _DONE_TAIL else (tail + chunk)[-_DONE_TAIL:]
        if not tail.rstrip().endswith(b"[DONE]"):
            raise StreamInterrupted("the upstream stream ended without [DONE]")
    except asyncio.CancelledError:
        logger.info("client went away; upstream stream cancelled %s", log_context)
        raise
    except Exception as exc:
        logger.warning("upstream stream failed mid-response %s: %s", log_context, type(exc).__name__)
        yield error_event(exc)
    finally:
        await body.aclose()


_DONE_TAIL = len(b"data: [DONE]\n\n") + 4  # room for \r\n line ends


class UpstreamBody:
    """An upstream response's body, read as it arrives (each network read whole), and its closing.

    When nothing needs decoding, from the aiohttp response under the SDK's transport: that skips
    httpx2's four generator layers (~4 µs per chunk, an eighth of the relay's CPU), and it lets the
    SDK's wrappers go as soon as the head is in: its response, httpx2's request and response with
    their headers, the request options (~10 KiB per open stream, of ~60). Closed as the SDK closes
    it. Otherwise (a compressed body) through the SDK. A read timeout surfaces as TimeoutError
    (aiohttp) or httpx2.TimeoutException (SDK).
    """

    __slots__ = ("_aiohttp_response", "_sdk_response", "chunks")

    def __init__(self, response: AsyncAPIResponse[Any]) -> None:
        http_response = response.http_response
        aiohttp_response = getattr(getattr(http_response.stream, "_stream", None), "_aiohttp_response", None)
        self._aiohttp_response: Any = None
        self._sdk_response: AsyncAPIResponse[Any] | None = None
        if getattr(aiohttp_response, "content", None) is not None and "content-encoding" not in http_response.headers:
            self._aiohttp_response = aiohttp_response
            self.chunks: AsyncIterator[bytes] = aiohttp_response.content.iter_any()
        else:
            self._sdk_response = response
            self.chunks = http_response.aiter_bytes()

    async def aclose(self) -> None:
        if self._aiohttp_response is not None:
            # What the SDK's transport does on close: release the connection (closed, as the body
            # was not read to its end) and wait for it.
            await self._aiohttp_response.__aexit__(None, None, None)
        elif self._sdk_response is not None:
            await self._sdk_response.close()
