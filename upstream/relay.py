"""Upstream SSE -> what our clients receive: transforms over a stream's network reads.

They only transform, and note in the stream's record what they see (the upstream's usage figures,
how much answer went through): opening, closing and the stream slot belong to stream.UpstreamStream.

The relay works on bytes: lines are split on b"\\n", which never falls inside a UTF-8 sequence, and
each JSON event is parsed whole, so a multi-byte character split across network reads is never
split in the output. Everything that arrived in one network read goes out as one write: chunks
already waiting are coalesced, and nothing is held back waiting for more.
"""

import logging
from collections.abc import AsyncIterator, Callable

import orjson

from .record import UPSTREAM_ERROR, StreamRecord

logger = logging.getLogger(__name__)


class StreamInterrupted(Exception):
    """The upstream stream failed after the response began; the response is cut off on purpose."""


async def text_deltas(
    chunks: AsyncIterator[bytes], record: StreamRecord, *, log_context: str = ""
) -> AsyncIterator[bytes]:
    """The content deltas of a chat completion stream, as UTF-8 text (chatbot-ui's body format).

    A stream that fails, or ends without [DONE], raises StreamInterrupted, so the server aborts
    the response without its final chunk: the client can tell a truncated answer from a complete one.
    """
    try:
        buffer = b""
        async for chunk in chunks:
            buffer += chunk
            if b"\n" not in chunk:
                continue
            lines = buffer.split(b"\n")
            buffer = lines.pop()
            pieces: list[str] = []
            try:
                finished = _collect_content(lines, pieces, record)
            except Exception:
                if pieces:  # what came before a bad event is still part of the answer
                    yield "".join(pieces).encode()
                raise
            if pieces:
                text = "".join(pieces)
                record.content_chars += len(text)
                yield text.encode()
            if finished:
                return
        raise StreamInterrupted("the upstream stream ended without [DONE]")
    except Exception as exc:
        logger.warning("upstream stream failed mid-response %s: %s", log_context, type(exc).__name__)
        raise StreamInterrupted(type(exc).__name__) from None


def _collect_content(lines: list[bytes], pieces: list[str], record: StreamRecord) -> bool:
    """Append each event's content delta to `pieces` (and usage to the record); True once [DONE] is seen."""
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
        elif event.get("usage"):  # the last event of a stream asked to include usage
            record.usage = event["usage"]
    return False


async def sse_passthrough(
    chunks: AsyncIterator[bytes],
    record: StreamRecord,
    *,
    error_event: Callable[[Exception], bytes],
    log_context: str = "",
) -> AsyncIterator[bytes]:
    """The upstream's SSE bytes as they arrive, unparsed (the /v1 endpoint's body).

    Each network read goes out as one write: what arrived together stays together, nothing waits
    for more. Only the end is looked at: a stream that fails, or ends without `data: [DONE]`,
    gets `error_event(exc)` as its last event, so the client knows the answer is incomplete.
    """
    try:
        tail = b""
        async for chunk in chunks:
            record.content_events += chunk.count(b"data:")  # a C-level scan: ~0.1 µs per read
            if _USAGE in chunk:
                _note_usage(chunk, record)
            yield chunk
            tail = chunk[-_DONE_TAIL:] if len(chunk) >= _DONE_TAIL else (tail + chunk)[-_DONE_TAIL:]
        if not tail.rstrip().endswith(b"[DONE]"):
            raise StreamInterrupted("the upstream stream ended without [DONE]")
    except Exception as exc:
        logger.warning("upstream stream failed mid-response %s: %s", log_context, type(exc).__name__)
        record.outcome = UPSTREAM_ERROR
        yield error_event(exc)


_DONE_TAIL = len(b"data: [DONE]\n\n") + 4  # room for \r\n line ends
_USAGE = b'"usage":{'  # only the usage event has one ("usage":null elsewhere, when it was asked for)


def _note_usage(chunk: bytes, record: StreamRecord) -> None:
    """The usage object of the usage event in `chunk` (a read may hold several events)."""
    for line in chunk.split(b"\n"):
        if line.startswith(b"data:") and _USAGE in line:
            try:
                usage = orjson.loads(line[5:].strip()).get("usage")
            except orjson.JSONDecodeError:
                return  # an event split across reads: the figures stay unknown (an estimate is used)
            if isinstance(usage, dict):
                record.usage = usage
