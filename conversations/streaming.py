"""An answer saved as it streams, hung off the upstream stream's owner (upstream.stream).

`AnswerStream` turns one upstream stream into the Server-Sent Events a client reads (`start`,
`delta`..., then `done` or `error`) and keeps the database in step, without the relay ever waiting
for it:

- start: the question and the answer (`streaming`) are written once the upstream has answered, in
  one transaction (answers.answer_start), before the first event: what `start` names exists.
- as it streams: every MESSAGE_FLUSH_SECONDS, one task per process writes the text so far of every
  answer streaming in it, in one transaction (answers.answers_flush): one UPDATE per answer a
  second, never one per chunk, and one commit per process a second however many answers stream
  (on SQLite a commit costs ~0.1-0.8 ms of CPU, the UPDATE inside it ~40 µs). Each UPDATE also
  notices a stop asked for through another worker (the answer is no longer `streaming`:
  answers.answer_stop_elsewhere), and tells that the worker is alive (updated_at).
- end: the owner's `when_closed` callback, however the stream ended (complete, Stop, the upstream
  failed, the client went away), starts the last write in a task of its own, kept referenced here,
  so a client that disconnects cannot cancel it. It holds everything relayed: each delta is added
  to the answer's text before it is handed on, so nothing a user saw is missing after a reload.

Database work runs off the event loop (offloop.run_db), and each write waits for the one before
it: a late flush never overwrites the last write.

Stop: `answer_stop()` stops an answer streaming in this process at once (the registry below), and
otherwise marks it `stopped` in the database for the worker that streams it (it stops within
MESSAGE_FLUSH_SECONDS). Both cancel the upstream request; the text generated so far is kept.
"""

import asyncio
import contextlib
import contextvars
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine
from datetime import datetime
from typing import Any

import orjson
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from core.errors import ApiError
from upstream import relay
from upstream.credentials import OpenAICredentials
from upstream.errors import broken_off
from upstream.record import COMPLETE, STOPPED, UPSTREAM_ERROR, StreamRecord
from upstream.stream import UpstreamStream

from .answers import AnswerPlan, answer_end, answer_start, answer_stop_elsewhere, answers_flush
from .models import Message
from .offloop import run_db
from .titles import title_generate

logger = logging.getLogger(__name__)

Status = Message.Status

# The answers streaming in this process, by message id: what the flusher writes, and what the stop
# endpoint stops at once.
_live: dict[uuid.UUID, "AnswerStream"] = {}
_flushers: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}  # one per event loop: per process
# Tasks that must outlive the request that started them (last writes, titles): the event loop keeps
# only weak references to tasks, so they are kept here until done.
_background: set[asyncio.Task[Any]] = set()

_DONE = b"data: [DONE]\n\n"
_FINISH = b'"finish_reason":"'


def _keep[T](task: asyncio.Task[T]) -> asyncio.Task[T]:
    _background.add(task)
    task.add_done_callback(_background.discard)
    return task


def iso(value: datetime) -> str:
    """As the REST API writes times (DRF's ISO 8601: UTC as Z)."""
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def message_json(message: Message, sibling_ids: list[uuid.UUID]) -> dict[str, Any]:
    """A message as the REST API shows it (conversations/serializers.py), with its timings. Built by
    hand: DRF's serializer costs ~100 µs a message, twice per answer."""
    return {
        "id": str(message.id),
        "parent_id": str(message.parent_id) if message.parent_id else None,
        "role": message.role,
        "content": message.content,
        "model": message.model,
        "status": message.status,
        "finish_reason": message.finish_reason,
        "error_code": message.error_code,
        "created_at": iso(message.created_at),
        "updated_at": iso(message.updated_at),
        "sibling_ids": [str(sibling) for sibling in sibling_ids],
        "time_to_first_token": message.time_to_first_token,
        "duration": message.duration,
    }


class AnswerStream:
    """One answer: its upstream stream, its events, its writes. See the module's docstring."""

    def __init__(
        self,
        plan: AnswerPlan,
        *,
        credentials: OpenAICredentials,
        error_body: Callable[[ApiError], dict[str, Any]],
        log_context: str = "",
    ) -> None:
        self.plan = plan
        self.id = plan.answer.id
        self._credentials = credentials  # for the title: the key the answer used
        self._error_body = error_body
        self._log_context = log_context
        self._stream: UpstreamStream | None = None
        self._parts: list[str] = []  # the answer's text, as relayed
        self._flushed_parts = 0  # how many of them the last flush wrote
        self._loop = asyncio.get_running_loop()
        self._first_text: float | None = None  # monotonic
        self._finish_reason = ""
        self._read_error: BaseException | None = None  # why the upstream body broke off
        self._failure: ApiError | None = None
        self._stopping = False
        self._event_id = 0
        self._started: asyncio.Future[None] | None = None  # the start write
        self._flushing: asyncio.Future[set[uuid.UUID]] | None = None  # the last flush that held it
        self._closing = False
        # The last write's result (the saved message, or None), once the stream has closed. A future
        # set when the write is done: the relaying task can see the stream end before the owner has
        # called `closed` (when another task stops it, the owner finishes closing in that task).
        self._final: asyncio.Future[dict[str, Any] | None] | None = None

    # --- opening ---------------------------------------------------------------------------------

    def closed(self, record: StreamRecord) -> None:
        """The owner's when_closed callback (on the event loop, once everything is closed): the last
        write, in a task of its own. Nothing to write for a stream that failed to open."""
        if self._started is None or self._closing:
            return
        self._closing = True
        _live.pop(self.id, None)
        _keep(asyncio.ensure_future(self._end(record))).add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[dict[str, Any] | None]) -> None:
        final = self._final
        if final is not None and not final.done():
            final.set_result(None if task.cancelled() or task.exception() else task.result())

    async def start(self, stream: UpstreamStream) -> None:
        """Write the question and the streaming answer (the upstream has answered: `stream` is open),
        then relay. On failure the stream is closed and the error raised (ApiError(404): the
        conversation was deleted meanwhile)."""
        self._stream = stream
        stream.when_closed(self.closed)
        self._final = asyncio.get_running_loop().create_future()
        # A future of its own: if the client leaves during the write, the write still completes, and
        # the last write (after the owner closes the abandoned stream) waits for it.
        self._started = asyncio.ensure_future(run_db(answer_start, plan=self.plan))
        try:
            await asyncio.shield(self._started)
        except Exception:
            await stream.aclose()
            raise
        stream.relay(self.transform)
        if not self._closing:  # (not closed during the write)
            _live[self.id] = self
            _flusher_running(self._loop)

    # --- relaying --------------------------------------------------------------------------------

    async def events(self) -> AsyncIterator[bytes]:
        """The response body: `start`, a `delta` per relayed piece of text, then `done` or `error`."""
        stream = self._stream
        assert stream is not None, "start() first"
        try:
            yield self._event(self._start_payload())
            async for event in stream:
                yield event
            saved = await asyncio.shield(self._final) if self._final is not None else None
            yield self._event(self._end_payload(saved))
        finally:
            await stream.aclose()

    async def transform(self, chunks: AsyncIterator[bytes], record: StreamRecord) -> AsyncIterator[bytes]:
        """The relay transform (upstream.stream.Transform): relay.text_deltas, each delta kept in the
        answer's text and sent as a `delta` event. A failure mid-stream ends the relay (the record
        says upstream_error) and leaves the `error` event to events()."""
        deltas = relay.text_deltas(self._tap(chunks), record, log_context=self._log_context)
        parts = self._parts
        try:
            async for delta in deltas:
                text = delta.decode()
                if self._first_text is None:
                    self._first_text = time.monotonic()
                parts.append(text)  # kept before it is sent: whatever a client sees is saved
                self._event_id += 1
                yield b'id: %d\ndata: {"type":"delta","text":%b}\n\n' % (self._event_id, orjson.dumps(text))
        except relay.StreamInterrupted as exc:
            if not record.outcome:
                record.outcome = UPSTREAM_ERROR
            self._failure = broken_off(self._read_error or exc)
        finally:
            if isinstance(deltas, AsyncGenerator):  # (it is one; the type says only AsyncIterator)
                await deltas.aclose()

    async def _tap(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """The upstream's network reads, as they are, noting the finish reason on the way (a C-level
        scan per read: the other events say "finish_reason":null). Once stopped on purpose, the
        read that the close broke off ends the events as finished, so the relay ends quietly."""
        try:
            async for chunk in chunks:
                if _FINISH in chunk:
                    self._note_finish(chunk)
                yield chunk
        except Exception as exc:
            if not self._stopping:
                self._read_error = exc
                raise
        if self._stopping:
            yield _DONE

    def _note_finish(self, chunk: bytes) -> None:
        start = chunk.rindex(_FINISH) + len(_FINISH)
        end = chunk.find(b'"', start)
        if 0 < end - start <= 40:
            self._finish_reason = chunk[start:end].decode(errors="replace")

    def _event(self, payload: dict[str, Any]) -> bytes:
        self._event_id += 1
        return b"id: %d\ndata: %b\n\n" % (self._event_id, orjson.dumps(payload))

    def _start_payload(self) -> dict[str, Any]:
        plan = self.plan
        question = plan.question
        return {
            "type": "start",
            "conversation": {"id": str(plan.conversation_id), "title": plan.title},
            "user_message": message_json(question, plan.question_sibling_ids) if question else None,
            "assistant_message": message_json(plan.answer, plan.answer_sibling_ids),
        }

    def _end_payload(self, saved: dict[str, Any] | None) -> dict[str, Any]:
        if saved is None:
            error = ApiError(500, "answer_not_saved", "The answer could not be saved. Please try again.")
            return {"type": "error", **self._error_body(error)}
        if saved["status"] in (Status.COMPLETE, Status.STOPPED):
            return {"type": "done", "message": saved}
        error = self._failure or broken_off(RuntimeError("the stream ended early"))
        return {"type": "error", **self._error_body(error), "assistant_message": saved}

    # --- writing ---------------------------------------------------------------------------------

    def _unflushed(self) -> tuple[uuid.UUID, str | None, int]:
        """For the flusher: the text so far, if any came since the last flush (else None)."""
        count = len(self._parts)
        return self.id, "".join(self._parts) if count != self._flushed_parts else None, count

    async def _end(self, record: StreamRecord) -> dict[str, Any] | None:
        """The last write: all the text, how it ended, the timings. Then, for a conversation's first
        answer, its title in the background. The saved message, or None if it could not be saved."""
        assert self._started is not None
        try:
            await self._started
        except BaseException:
            return None  # nothing was saved: nothing to end
        if self._flushing is not None:
            await asyncio.wait([self._flushing])  # (its failure was logged by the flusher)
        answer = self.plan.answer
        content = "".join(self._parts)
        status, error_code = self._status(record.outcome, bool(content))
        answer.content = content
        answer.status = status
        answer.error_code = error_code
        answer.finish_reason = "" if status == Status.STOPPED else self._finish_reason
        answer.time_to_first_token = None if self._first_text is None else self._first_text - record.started
        answer.duration = record.duration
        answer.updated_at = timezone.now()
        fields = {
            name: getattr(answer, name)
            for name in (
                "content",
                "status",
                "error_code",
                "finish_reason",
                "time_to_first_token",
                "duration",
                "updated_at",
            )
        }
        try:
            await run_db(answer_end, message_id=self.id, fields=fields)
        except Exception:
            logger.exception("could not write the end of an answer %s", self._log_context)
            return None
        if (
            self.plan.title_from_question
            and settings.CONVERSATION_AUTO_TITLE
            and content
            and status in (Status.COMPLETE, Status.STOPPED)
        ):
            self._title_later(content)
        return message_json(answer, self.plan.answer_sibling_ids)

    def _status(self, outcome: str, has_text: bool) -> tuple[str, str]:
        if outcome == COMPLETE:
            return Status.COMPLETE, ""
        if outcome == STOPPED:
            return Status.STOPPED, ""
        if outcome == UPSTREAM_ERROR:
            code = self._failure.code if self._failure else "openai_interrupted"
            return (Status.INTERRUPTED if has_text else Status.ERROR), code
        return Status.INTERRUPTED, "client_gone"  # the client went away

    def _title_later(self, answer: str) -> None:
        plan = self.plan
        question = plan.question.content if plan.question is not None else ""
        coro = title_generate(
            user_id=plan.owner_id,
            credentials=self._credentials,
            conversation_id=plan.conversation_id,
            question=question,
            answer=answer,
            replaces=plan.title,
        )
        _spawn_detached(coro)

    # --- stopping --------------------------------------------------------------------------------

    async def _stop_stream(self) -> None:
        self._stopping = True
        if self._stream is None:
            return
        # The owner closes the relay's generator, which refuses (RuntimeError) while the relaying task
        # is inside it, awaiting the next read. Everything is closed all the same: that read breaks
        # off, and _tap ends the events there.
        with contextlib.suppress(RuntimeError):
            await self._stream.stop()

    async def stop(self) -> dict[str, Any] | None:
        """Stop now: the upstream request is cancelled, the text so far kept. The saved message."""
        await self._stop_stream()
        return await asyncio.shield(self._final) if self._final is not None else None


def _flusher_running(loop: asyncio.AbstractEventLoop) -> None:
    task = _flushers.get(loop)
    if task is None or task.done():
        _flushers[loop] = loop.create_task(_flush_answers(loop), context=contextvars.Context())


async def _flush_answers(loop: asyncio.AbstractEventLoop) -> None:
    """Every MESSAGE_FLUSH_SECONDS, while answers stream on this loop: their text so far, in one
    transaction; those found no longer streaming (stopped through another worker) are stopped."""
    while True:
        await asyncio.sleep(float(settings.MESSAGE_FLUSH_SECONDS))
        answers = [answer for answer in _live.values() if answer._loop is loop]
        if not answers:
            del _flushers[loop]  # (no await since the check: an answer starting now starts another)
            return
        pending = [answer._unflushed() for answer in answers]
        flushing = asyncio.ensure_future(
            run_db(answers_flush, texts=[(message_id, text) for message_id, text, _ in pending])
        )
        for answer in answers:
            answer._flushing = flushing  # its last write waits for this one
        try:
            streaming = await asyncio.shield(flushing)
        except Exception:
            logger.exception("could not write the streaming answers")
            continue
        for answer, (message_id, _, count) in zip(answers, pending, strict=True):
            answer._flushed_parts = count
            if message_id not in streaming and message_id in _live:
                logger.info("answer stopped through another worker %s", answer._log_context)
                _keep(loop.create_task(answer._stop_stream()))


def _spawn_detached(coro: Coroutine[Any, Any, None]) -> None:
    """A task outside the request's context: it may open an upstream stream of its own, which must
    not be taken for one the request left open (upstream.stream.closing_abandoned_streams closes
    those when the request ends)."""
    loop = asyncio.get_running_loop()
    _keep(loop.create_task(coro, context=contextvars.Context()))


async def answer_stop(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[dict[str, Any], bool]:
    """Stop an answer: at once if it streams in this process, else through the database for the
    worker that streams it. (message, ended): the saved message once stopped here (or one that had
    ended already), or the message as it is now while its worker stops it."""
    live = _live.get(message_id)
    if (
        live is not None
        and live.plan.owner_id == owner.pk
        and live.plan.conversation_id == conversation_id
        and live._loop is asyncio.get_running_loop()
    ):
        saved = await live.stop()
        if saved is not None:
            return saved, True
    message, sibling_ids, stopping = await run_db(
        answer_stop_elsewhere, owner=owner, conversation_id=conversation_id, message_id=message_id
    )
    return message_json(message, sibling_ids), not stopping


async def answers_drain(timeout: float = 10.0) -> None:
    """Wait for the last writes (and titles) still running: for a server shutting down."""
    pending = set(_background)
    if pending:
        await asyncio.wait(pending, timeout=timeout)
