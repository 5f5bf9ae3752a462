"""One usage record per upstream call, written once the call has ended, off the streaming path.

Every entry point opens its upstream call with `open_stream(..., when_closed=recorder(...))`. The
callback runs on the event loop as the stream closes (however it ended, a call that failed to open
included) and only queues the call: a writer task of the event loop writes what has queued within
FLUSH_AFTER seconds in one transaction, on the thread the ORM uses, while the responses are already
over. One commit per call cost ~1.5 ms of CPU and ~20 ms of a blocked ORM thread on SQLite (an
fsync each); a hundred calls in one commit cost ~90 µs of CPU each (measured in-process). A failure
to write is logged and goes no further: the answers have been delivered by then, and a missing
record must never turn into an error for one. Shutdown writes what is queued (chatproject/lifespan.py).

Token figures come from the upstream's own usage object (streamed calls ask for it: ask_for_usage;
a non-streamed reply carries it). A call cut off before the upstream sent one gets an estimate
(estimate.py), marked `estimated`. A call the upstream refused (an error reply, nothing relayed)
used nothing: zero tokens, not an estimate. A call refused before it reached the upstream (the
per-user stream cap) is not an upstream call and is not recorded.
"""

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections, transaction

from upstream.record import UPSTREAM_ERROR, StreamRecord

from .estimate import completion_tokens_estimate, prompt_tokens_estimate
from .models import MODEL_MAX_LENGTH, UsageRecord
from .prices import call_cost

logger = logging.getLogger(__name__)

FLUSH_AFTER = 0.25  # seconds a record may wait for others to be written with


def ask_for_usage(params: dict[str, Any]) -> bool:
    """Ask the upstream for its usage figures on a streamed call (stream_options.include_usage: they
    come as one last event before [DONE]). Returns whether the caller had asked for them itself: if
    not, the /v1 relay takes that event (and the `"usage":null` it adds to every other event) out of
    what the caller receives. A non-streamed call carries its usage anyway: left alone."""
    if params.get("stream") is not True:
        return False
    options = params.get("stream_options")
    if options is None:
        params["stream_options"] = {"include_usage": True}
        return False
    if not isinstance(options, dict):
        return True  # not ours to fix: the upstream answers it with a 400, and the caller sees that
    asked = options.get("include_usage") is True
    if not asked:
        params["stream_options"] = {**options, "include_usage": True}
    return asked


@dataclass(frozen=True, slots=True)
class Figures:
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    estimated: bool


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _detail(usage: dict[str, Any], details: str, name: str) -> int:
    inner = usage.get(details)
    return _count(inner.get(name)) if isinstance(inner, dict) else 0


def usage_figures(record: StreamRecord, messages: Sequence[Any]) -> Figures:
    """The call's token figures: the upstream's, or an estimate (see the module docstring)."""
    usage = record.usage
    if usage is not None:
        return Figures(
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")),
            cached_tokens=_detail(usage, "prompt_tokens_details", "cached_tokens"),
            reasoning_tokens=_detail(usage, "completion_tokens_details", "reasoning_tokens"),
            estimated=False,
        )
    if record.outcome == UPSTREAM_ERROR and record.first_chunk is None:
        return Figures(0, 0, 0, 0, estimated=False)  # refused by the upstream: nothing used
    return Figures(
        prompt_tokens=prompt_tokens_estimate(messages),
        completion_tokens=completion_tokens_estimate(record),
        cached_tokens=0,
        reasoning_tokens=0,
        estimated=True,
    )


@dataclass(frozen=True, slots=True)
class Call:
    """What a recorder knows of its call before it starts; the StreamRecord says the rest."""

    user_id: int
    entry_point: str
    model: str
    messages: Sequence[Any]
    api_token_id: int | None = None
    key_source: str = ""
    message_id: Any = None


def recorder(
    *,
    user_id: int,
    entry_point: str,
    model: str,
    messages: Sequence[Any],
    api_token_id: int | None = None,
    key_source: str = "",
    message_id: Any = None,
) -> Callable[[StreamRecord], None]:
    """The when_closed callback (upstream.stream.open_stream) that records this call.

    `messages` is the request's message list, kept by reference and only read (to estimate the prompt)
    if the upstream sends no usage. `message_id`: the conversation message the answer went to.
    """
    call = Call(user_id, entry_point, model, messages, api_token_id, key_source, message_id)

    def when_closed(record: StreamRecord) -> None:
        if not record.called_upstream:
            return  # refused before the request went out: no upstream call to record
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # closed from sync code, which no endpoint does
            logger.warning("usage of a call closed outside an event loop is not recorded")
            return
        _writer_of(loop).add(call, record)

    return when_closed


class _Writer:
    """The records queued on one event loop, and the task that writes them."""

    def __init__(self) -> None:
        self.queued: list[tuple[Call, StreamRecord]] = []
        self.task: asyncio.Task[None] | None = None
        self.now = asyncio.Event()  # set: write without waiting for more
        self.flushing = 0

    def add(self, call: Call, record: StreamRecord) -> None:
        self.queued.append((call, record))
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.queued:
                if not self.flushing:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.now.wait(), FLUSH_AFTER)
                    self.now.clear()
                batch, self.queued = self.queued, []
                try:
                    await sync_to_async(usage_records_create)(batch=batch)
                except Exception:
                    logger.exception("%d usage record(s) not written", len(batch))
        finally:
            self.task = None

    async def flush(self) -> None:
        self.flushing += 1
        try:
            self.now.set()
            while (task := self.task) is not None:
                await asyncio.shield(task)
        finally:
            self.flushing -= 1


_writers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Writer]" = weakref.WeakKeyDictionary()


def _writer_of(loop: asyncio.AbstractEventLoop) -> _Writer:
    writer = _writers.get(loop)
    if writer is None:
        writer = _writers[loop] = _Writer()
    return writer


async def usage_writes_settled() -> None:
    """Write what this event loop has queued now, and wait until it is written (shutdown, tests)."""
    await _writer_of(asyncio.get_running_loop()).flush()


def _fields(call: Call, record: StreamRecord) -> dict[str, Any]:
    figures = usage_figures(record, call.messages)
    model = call.model[:MODEL_MAX_LENGTH]
    return {
        "user_id": call.user_id,
        "entry_point": call.entry_point,
        "model": model,
        "prompt_tokens": figures.prompt_tokens,
        "completion_tokens": figures.completion_tokens,
        "cached_tokens": figures.cached_tokens,
        "reasoning_tokens": figures.reasoning_tokens,
        "estimated": figures.estimated,
        "outcome": record.outcome,
        "key_source": call.key_source,
        "started_at": record.started_at,
        "time_to_first_token": record.time_to_first_chunk,
        "duration": record.duration,
        "cost": call_cost(
            model=model,
            day=record.started_at.date(),
            prompt_tokens=figures.prompt_tokens,
            cached_tokens=figures.cached_tokens,
            completion_tokens=figures.completion_tokens,
        ),
    }


def usage_records_create(*, batch: Sequence[tuple[Call, StreamRecord]]) -> None:
    """Write the records of ended calls, costs included, in one transaction (sync: runs where the
    ORM runs). If that fails (a token revoked or a message deleted while its call streamed: a
    foreign key), each is written on its own, without a link that no longer exists; a record that
    still cannot be written is logged."""
    try:
        try:
            rows = [
                UsageRecord(
                    **_fields(call, record), api_token_id=call.api_token_id, message_id=call.message_id
                )
                for call, record in batch
            ]
            with transaction.atomic():
                UsageRecord.objects.bulk_create(rows)
        except IntegrityError:
            for call, record in batch:
                try:
                    usage_record_create(call=call, record=record)
                except Exception:
                    logger.exception(
                        "usage record not written (user %s, %s, model %s)",
                        call.user_id,
                        call.entry_point,
                        call.model,
                    )
    finally:
        _release_connections()


def usage_record_create(*, call: Call, record: StreamRecord) -> UsageRecord:
    """Write the record of one ended call (sync), without its token or message link if either has
    been deleted since the call began (as it would have lost it, had it been written first)."""
    fields = _fields(call, record)
    try:
        with transaction.atomic():
            return UsageRecord.objects.create(
                **fields, api_token_id=call.api_token_id, message_id=call.message_id
            )
    except IntegrityError:
        if call.api_token_id is None and call.message_id is None:
            raise
        return UsageRecord.objects.create(**fields)


def _release_connections() -> None:
    # As profiles.auth does after its lookups: hand the connection back (to the pool, or closed unless
    # CONN_MAX_AGE keeps it) rather than hold it on a thread that may not be back for a while.
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
