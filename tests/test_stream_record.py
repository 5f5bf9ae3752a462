"""The stream owner's record: how each upstream call ended, its timings and the upstream's usage,
handed to `when_closed` once everything is closed (usage records and saved answers hang off it)."""

from functools import partial

import pytest

from core.errors import ApiError
from tests.conftest import ALICE_KEY
from tests.fake_openai import Scenario
from upstream import relay
from upstream.credentials import OpenAICredentials
from upstream.limits import acquire_stream_slot
from upstream.record import CLIENT_GONE, COMPLETE, STOPPED, UPSTREAM_ERROR, StreamRecord
from upstream.stream import open_stream

CREDENTIALS = OpenAICredentials(api_key=ALICE_KEY, organization=None)
PARAMS = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


async def opened(records: list[StreamRecord], params: dict | None = None, user_id: int = 1):
    stream = await open_stream(
        user_id=user_id, credentials=CREDENTIALS, params=params or PARAMS, when_closed=records.append
    )
    return stream.relay(relay.text_deltas)


async def test_a_complete_answer_is_recorded_with_its_usage_and_timings(fake_openai):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo"], gap=0.05)
    records: list[StreamRecord] = []
    stream = await opened(records, {**PARAMS, "stream_options": {"include_usage": True}})
    assert b"".join([chunk async for chunk in stream]) == b"Hello"
    [record] = records
    assert record.outcome == COMPLETE and record.called_upstream
    assert record.content_chars == 5
    assert record.usage is not None and record.usage["completion_tokens"] == 2
    assert 0 < record.time_to_first_chunk <= record.duration
    assert record.duration >= 0.05


async def test_a_stream_closed_before_its_end_is_client_gone_and_cancelled_upstream(fake_openai):
    fake_openai.scenario = Scenario(pieces=["x"] * 50, gap=0.05)
    records: list[StreamRecord] = []
    stream = await opened(records)
    await anext(stream)
    await stream.aclose()  # what the ASGI net does with a body Django abandoned
    await stream.aclose()  # idempotent: one record
    assert [r.outcome for r in records] == [CLIENT_GONE]
    assert records[0].usage is None  # cut off before the upstream sent any: an estimate is needed
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)


async def test_stop_ends_the_stream_as_stopped_and_cancels_the_upstream(fake_openai):
    fake_openai.scenario = Scenario(pieces=["x"] * 50, gap=0.05)
    records: list[StreamRecord] = []
    stream = await opened(records)
    await anext(stream)
    await stream.stop()
    with pytest.raises(StopAsyncIteration):
        await anext(stream)
    assert [r.outcome for r in records] == [STOPPED]
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)


async def test_an_upstream_failure_mid_stream_is_upstream_error(fake_openai):
    fake_openai.scenario = Scenario(pieces=["a", "b", "c"], fail_after=2)
    records: list[StreamRecord] = []
    stream = await opened(records)
    with pytest.raises(relay.StreamInterrupted):
        async for _ in stream:
            pass
    assert [r.outcome for r in records] == [UPSTREAM_ERROR]
    assert records[0].content_chars == 2


async def test_the_passthrough_counts_events_and_keeps_the_usage_event(fake_openai):
    fake_openai.scenario = Scenario(pieces=["a", "b", "c"])
    records: list[StreamRecord] = []
    stream = await open_stream(
        user_id=1,
        credentials=CREDENTIALS,
        when_closed=records.append,
        params={**PARAMS, "stream_options": {"include_usage": True}},
    )
    body = b"".join([c async for c in stream.relay(partial(relay.sse_passthrough, error_event=repr))])
    [record] = records
    assert record.outcome == COMPLETE and record.usage["completion_tokens"] == 3
    assert record.content_events == body.count(b"data:") == 7  # role, 3 pieces, finish, usage, [DONE]
    assert b'"usage":{' in body  # asked for by the caller here: passed on


async def test_an_upstream_refusal_is_recorded_and_a_capped_call_is_not_an_upstream_call(
    fake_openai, settings
):
    records: list[StreamRecord] = []
    bad = OpenAICredentials(api_key="sk-bad-0123456789abcdefghijkl", organization=None)
    with pytest.raises(ApiError):
        await open_stream(user_id=1, credentials=bad, params=PARAMS, when_closed=records.append)
    assert [(r.outcome, r.called_upstream) for r in records] == [(UPSTREAM_ERROR, True)]

    settings.MAX_STREAMS_PER_USER = 1
    held = await acquire_stream_slot(user_id=7)
    with pytest.raises(ApiError):
        await open_stream(user_id=7, credentials=CREDENTIALS, params=PARAMS, when_closed=records.append)
    assert records[-1].called_upstream is False and len(fake_openai.requests) == 1
    await held.release()
