"""Every upstream call leaves one usage record, however it ends, from every entry point: exact figures
when the upstream sent them, an estimate (marked) when the call was cut off first; and /v1 callers
receive what they asked for, whether or not we asked the upstream for usage figures."""

import asyncio
import json
import logging
import re
import time
from decimal import Decimal

import aiohttp
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from profiles.tokens import token_create, token_revoke
from tests.conftest import ALICE_KEY, make_user
from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body, post_chat
from upstream import relay
from upstream.credentials import OpenAICredentials
from upstream.record import StreamRecord
from upstream.stream import open_stream
from usage.estimate import completion_tokens_estimate, prompt_tokens_estimate
from usage.models import CHAT_API, V1, AppendOnly, UsageRecord
from usage.recording import ask_for_usage, recorder, usage_writes_settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_prices")]

COMPLETIONS = "/v1/chat/completions"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
# The fake counts a prompt as OpenAI's recipe does with 4 characters a token: what our estimate does.
FAKE_PROMPT_TOKENS = 3 + (3 + 3) + (3 + 3)  # priming, then per message: framing + ceil(chars / 4)
CHAT_API_PROMPT_TOKENS = prompt_tokens_estimate(chat_body()["messages"])
GPT_4O_MINI = (Decimal("0.15"), Decimal("0.60"))  # seeded list price, USD per million (input, output)


def completion_body(**extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": MESSAGES, **extra}


def token_of(alice) -> tuple[int, str]:
    token, text = token_create(user=alice, name="usage tests")
    return token.pk, text


@pytest.fixture
def alice_api_token(alice) -> tuple[int, str]:
    return token_of(alice)


async def records() -> list[UsageRecord]:
    await usage_writes_settled()
    return await sync_to_async(lambda: list(UsageRecord.objects.order_by("id")))()


async def records_eventually(count: int, timeout: float = 5.0) -> list[UsageRecord]:
    """For calls served by the live server (its own event loop): wait until `count` records exist."""
    deadline = time.monotonic() + timeout
    while len(found := await records()) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    return found


def cost_of(prompt: int, completion: int) -> Decimal:
    return (prompt * GPT_4O_MINI[0] + completion * GPT_4O_MINI[1]) / Decimal(1_000_000)


async def post_v1(body: dict, token: str) -> tuple[int, bytes]:
    response = await AsyncClient().generic(
        "POST", COMPLETIONS, json.dumps(body).encode(), content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    if response.streaming:
        return response.status_code, b"".join([part async for part in response.streaming_content])
    return response.status_code, response.content


# --- complete answers: the upstream's own figures ------------------------------------------------


async def test_a_complete_chat_answer_is_recorded_with_the_upstreams_figures_and_its_cost(
    fake_openai, alice, alice_api_token
):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo", "!"])
    token_id, token = alice_api_token
    response, content = await post_chat(AsyncClient(), chat_body(), token=token)
    assert response.status_code == 200 and content == b"Hello!"  # the client's body: unchanged
    assert fake_openai.last_request.json["stream_options"] == {"include_usage": True}  # asked for
    [record] = await records()
    assert (record.user_id, record.entry_point, record.api_token_id) == (alice.pk, CHAT_API, token_id)
    assert (record.model, record.outcome, record.key_source) == ("gpt-4o-mini", "complete", "own")
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (
        CHAT_API_PROMPT_TOKENS,
        3,
        False,
    )
    assert record.cost == cost_of(CHAT_API_PROMPT_TOKENS, 3)
    assert 0 < record.time_to_first_token <= record.duration


async def test_a_session_call_names_no_token(fake_openai, alice):
    client = AsyncClient(enforce_csrf_checks=False)
    await sync_to_async(client.force_login)(alice)
    response, _ = await post_chat(client, chat_body())
    assert response.status_code == 200
    [record] = await records()
    assert record.api_token_id is None and record.entry_point == CHAT_API


def normalised(body: bytes) -> bytes:
    """The fake gives each answer its own id and timestamp; everything else must be equal."""
    body = re.sub(rb'"id":"chatcmpl-fake\d+"', b'"id":"X"', body)
    return re.sub(rb'"created":\d+', b'"created":0', body)


async def straight_from_the_fake(fake_openai, body: dict) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake_openai.base_url + "/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {ALICE_KEY}"},
        ) as resp,
    ):
        return await resp.read()


@pytest.mark.parametrize("options", [None, {}, {"include_usage": False}])
async def test_a_v1_stream_whose_caller_did_not_ask_for_usage_is_byte_for_byte_what_it_asked_for(
    fake_openai, alice, alice_api_token, options
):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo", "!", " é"])
    body = completion_body(stream=True, **({} if options is None else {"stream_options": options}))
    status, received = await post_v1(body, alice_api_token[1])
    assert status == 200
    assert fake_openai.last_request.json["stream_options"]["include_usage"] is True  # we asked...
    upstream = await straight_from_the_fake(fake_openai, body)  # ...the same request, as the caller sent it
    assert b'"usage"' not in received and b'"usage"' not in upstream
    assert normalised(received) == normalised(upstream)
    [record] = await records()
    assert (record.entry_point, record.outcome, record.estimated) == (V1, "complete", False)
    assert (record.prompt_tokens, record.completion_tokens) == (FAKE_PROMPT_TOKENS, 4)  # ...and got them


async def test_a_v1_stream_whose_caller_asked_for_usage_gets_it(fake_openai, alice, alice_api_token):
    fake_openai.scenario = Scenario(pieces=["a", "b"])
    body = completion_body(stream=True, stream_options={"include_usage": True})
    status, received = await post_v1(body, alice_api_token[1])
    assert status == 200
    assert normalised(received) == normalised(await straight_from_the_fake(fake_openai, body))
    assert (
        received.count(b'"usage":{') == 1 and received.count(b'"usage":null') == 4
    )  # role, 2 pieces, finish
    [record] = await records()
    assert (record.prompt_tokens, record.completion_tokens, record.estimated) == (
        FAKE_PROMPT_TOKENS,
        2,
        False,
    )


async def test_a_non_streamed_v1_answer_is_recorded_from_its_body(fake_openai, alice, alice_api_token):
    fake_openai.scenario = Scenario(pieces=["a", "b", "c"])
    status, received = await post_v1(completion_body(), alice_api_token[1])
    assert status == 200 and "stream_options" not in fake_openai.last_request.json
    assert orjson.loads(received)["usage"]["completion_tokens"] == 3
    [record] = await records()
    assert (record.entry_point, record.outcome, record.estimated) == (V1, "complete", False)
    assert (record.prompt_tokens, record.completion_tokens) == (FAKE_PROMPT_TOKENS, 3)
    assert record.api_token_id == alice_api_token[0]


async def test_cached_and_reasoning_tokens_are_taken_from_the_usage_details(alice):
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 300,
        "prompt_tokens_details": {"cached_tokens": 800},
        "completion_tokens_details": {"reasoning_tokens": 200},
    }
    record = StreamRecord(outcome="complete", called_upstream=True, usage=usage)
    recorder(user_id=alice.pk, entry_point=V1, model="gpt-4o-mini", messages=[])(record)
    [saved] = await records()
    assert (saved.cached_tokens, saved.reasoning_tokens, saved.estimated) == (800, 200, False)
    # 200 input tokens at $0.15, 800 cached at $0.075, 300 output at $0.60 (per million)
    assert saved.cost == Decimal("0.00027")


# --- cut off: an estimate, marked ----------------------------------------------------------------


async def test_a_stopped_answer_is_recorded_as_an_estimate(fake_openai, alice):
    fake_openai.scenario = Scenario(pieces=["abcd"] * 50, gap=0.02)
    params = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    stream = await open_stream(
        user_id=alice.pk,
        credentials=OpenAICredentials(api_key=ALICE_KEY, organization=None),
        params=params,
        when_closed=recorder(user_id=alice.pk, entry_point=CHAT_API, model="gpt-4o-mini", messages=MESSAGES),
    )
    stream.relay(relay.text_deltas)
    for _ in range(3):
        await anext(stream)
    await stream.stop()  # what the conversation's Stop button does
    [record] = await records()
    assert (record.outcome, record.estimated) == ("stopped", True)
    assert record.prompt_tokens == FAKE_PROMPT_TOKENS  # the estimate counts as the fake does
    assert record.completion_tokens == 3  # 12 characters relayed, 4 a token
    assert record.cost == cost_of(FAKE_PROMPT_TOKENS, 3)


async def test_a_client_gone_from_the_chat_api_is_recorded_as_an_estimate(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["abcd"] * 100, gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            live_app + CHAT_URL,
            data=json.dumps(chat_body()),
            headers={"Authorization": f"Token {alice_token}"},
        )
        assert resp.status == 200
        await resp.content.readany()
        resp.close()
    [record] = await records_eventually(1)
    assert (record.entry_point, record.outcome, record.estimated) == (CHAT_API, "client_gone", True)
    assert record.prompt_tokens == CHAT_API_PROMPT_TOKENS and 1 <= record.completion_tokens < 100


async def test_a_client_gone_from_a_v1_stream_is_recorded_as_an_estimate(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["x"] * 100, gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            live_app + COMPLETIONS,
            json=completion_body(stream=True),
            headers={"Authorization": f"Bearer {alice_token}"},
        )
        assert resp.status == 200
        received = await resp.content.readany()
        while received.count(b"data:") < 4:
            received += await resp.content.readany()
        resp.close()
    [record] = await records_eventually(1)
    assert (record.entry_point, record.outcome, record.estimated) == (V1, "client_gone", True)
    assert record.prompt_tokens == FAKE_PROMPT_TOKENS
    assert 3 <= record.completion_tokens < 100  # one token per content event relayed (the role event not)


async def test_a_client_gone_while_a_non_streamed_v1_answer_is_awaited_is_recorded(
    live_app, fake_openai, alice_token
):
    fake_openai.scenario = Scenario(pieces=["x"] * 20, gap=0.1)  # the whole answer after ~2 s
    async with aiohttp.ClientSession() as session:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(
                session.post(
                    live_app + COMPLETIONS,
                    json=completion_body(),
                    headers={"Authorization": f"Bearer {alice_token}"},
                ),
                timeout=0.5,
            )
    [record] = await records_eventually(1)
    assert (record.entry_point, record.outcome, record.estimated) == (V1, "client_gone", True)
    assert (record.prompt_tokens, record.completion_tokens) == (FAKE_PROMPT_TOKENS, 0)


async def test_a_key_check_is_not_recorded(fake_openai, alice, alice_token):
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {alice_token}"})
    assert response.status_code == 200
    assert await records() == []


@pytest.mark.parametrize("path", ["chat_api", "v1"])
async def test_an_upstream_failure_mid_answer_is_recorded_as_an_estimate(
    fake_openai, alice, alice_api_token, path
):
    fake_openai.scenario = Scenario(pieces=["abcd", "efgh", "ijkl"], fail_after=2, gap=0.05)
    received = b""
    if path == "chat_api":
        response = await AsyncClient().generic(
            "POST", CHAT_URL, json.dumps(chat_body()).encode(), content_type="",
            headers={"Authorization": f"Token {alice_api_token[1]}"},
        )  # fmt: skip
        with pytest.raises(relay.StreamInterrupted):
            async for part in response.streaming_content:
                received += part
        relayed = -(-len(received) // 4)  # characters / 4, rounded up
    else:
        status, received = await post_v1(completion_body(stream=True), alice_api_token[1])
        assert status == 200 and b'"error"' in received
        relayed = received.count(b'"delta":{"content":')  # one token per content event
    [record] = await records()
    assert (record.entry_point, record.outcome, record.estimated) == (path, "upstream_error", True)
    assert record.completion_tokens == relayed
    assert record.prompt_tokens == (CHAT_API_PROMPT_TOKENS if path == "chat_api" else FAKE_PROMPT_TOKENS)


@pytest.mark.parametrize("path", ["chat_api", "v1_stream", "v1"])
async def test_an_upstream_refusal_is_recorded_with_nothing_used(fake_openai, alice, alice_api_token, path):
    body = {"model": "no-such-model"}  # the upstream answers 404 (model_not_found) before anything streams
    if path == "chat_api":
        response, _ = await post_chat(AsyncClient(), chat_body(model=body["model"]), token=alice_api_token[1])
        assert response.status_code == 400  # openai_model_not_found
    else:
        status, _ = await post_v1(completion_body(stream=path == "v1_stream", **body), alice_api_token[1])
        assert status == 400
    [record] = await records()
    assert (record.outcome, record.estimated, record.prompt_tokens, record.completion_tokens) == (
        "upstream_error",
        False,
        0,
        0,
    )
    assert record.cost is None  # no price for that model either


async def test_a_call_refused_before_the_upstream_is_not_recorded(
    fake_openai, alice, alice_api_token, settings
):
    settings.MAX_STREAMS_PER_USER = 1
    fake_openai.scenario = Scenario(pieces=["x"] * 20, gap=0.05)
    client = AsyncClient()
    first = await client.generic(
        "POST", CHAT_URL, json.dumps(chat_body()).encode(), content_type="",
        headers={"Authorization": f"Token {alice_api_token[1]}"},
    )  # fmt: skip
    refused, _ = await post_chat(AsyncClient(), chat_body(), token=alice_api_token[1])
    assert refused.status_code == 429
    b"".join([part async for part in first.streaming_content])
    assert [r.outcome for r in await records()] == ["complete"]


# --- prices -------------------------------------------------------------------------------------


async def test_a_model_without_a_price_gets_no_cost_not_a_wrong_one(fake_openai, alice, alice_api_token):
    status, _ = await post_v1(completion_body(model="my-local-llama", stream=True), alice_api_token[1])
    assert status == 200
    [record] = await records()
    assert record.completion_tokens == 5 and record.cost is None


# --- a record that cannot be written ---------------------------------------------------------------


async def test_a_record_that_cannot_be_written_is_logged_and_the_answer_is_whole(fake_openai, alice, caplog):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo"])
    stream = await open_stream(
        user_id=alice.pk,
        credentials=OpenAICredentials(api_key=ALICE_KEY, organization=None),
        params={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        # No such user (deleted while the answer streamed): the insert fails on its foreign key.
        when_closed=recorder(
            user_id=alice.pk + 1000, entry_point=CHAT_API, model="gpt-4o-mini", messages=MESSAGES
        ),
    )
    with caplog.at_level(logging.ERROR, logger="usage.recording"):
        assert b"".join([chunk async for chunk in stream.relay(relay.text_deltas)]) == b"Hello"
        assert await records() == []
    assert f"usage record not written (user {alice.pk + 1000}, chat_api, model gpt-4o-mini)" in caplog.text


async def test_records_are_append_only(alice):
    recorder(user_id=alice.pk, entry_point=V1, model="m", messages=[])(
        StreamRecord(outcome="complete", called_upstream=True, usage={"prompt_tokens": 1})
    )
    [record] = await records()
    with pytest.raises(AppendOnly):
        await sync_to_async(record.save)()
    with pytest.raises(AppendOnly):
        await sync_to_async(UsageRecord.objects.filter(pk=record.pk).update)(prompt_tokens=2)
    with pytest.raises(AppendOnly):
        await sync_to_async(UsageRecord.objects.all().delete)()


async def test_a_revoked_token_leaves_its_records_without_it(fake_openai, alice, alice_api_token):
    await post_chat(AsyncClient(), chat_body(), token=alice_api_token[1])
    [record] = await records()
    assert record.api_token_id == alice_api_token[0]
    assert await sync_to_async(token_revoke)(user=alice, token_id=alice_api_token[0])
    await sync_to_async(record.refresh_from_db)()
    assert record.api_token_id is None


async def test_a_call_whose_token_is_revoked_while_it_streams_is_still_recorded(
    fake_openai, alice, alice_api_token
):
    fake_openai.scenario = Scenario(pieces=["x"] * 10, gap=0.02)
    response = await AsyncClient().generic(
        "POST", CHAT_URL, json.dumps(chat_body()).encode(), content_type="",
        headers={"Authorization": f"Token {alice_api_token[1]}"},
    )  # fmt: skip
    assert await sync_to_async(token_revoke)(user=alice, token_id=alice_api_token[0])
    assert b"".join([part async for part in response.streaming_content]) == b"x" * 10
    [record] = await records()
    assert (record.outcome, record.api_token_id, record.completion_tokens) == ("complete", None, 10)


async def test_the_relay_strips_a_usage_event_split_across_reads(alice):
    """Network reads cut anywhere: inside the usage event, inside its marker, before its blank line."""
    events = [
        b'data: {"id":"c","choices":[{"delta":{"role":"assistant"}}],"usage":null}\n\n',
        b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}],"usage":null}\n\n',
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}\n\n',
        b"data: [DONE]\n\n",
    ]
    expected = (
        b'data: {"id":"c","choices":[{"delta":{"role":"assistant"}}]}\n\n'
        b'data: {"id":"c","choices":[{"delta":{"content":"hi"}}]}\n\n'
        b"data: [DONE]\n\n"
    )
    whole = b"".join(events)
    for cut in range(1, len(whole)):
        for second in (cut, min(len(whole), cut + 7), min(len(whole), cut + 90)):
            reads = [whole[:cut], whole[cut:second], whole[second:]]

            async def chunks(reads=reads):
                for read in reads:
                    if read:
                        yield read

            record = StreamRecord()
            out = [
                c async for c in relay.sse_passthrough(chunks(), record, error_event=repr, strip_usage=True)
            ]
            assert b"".join(out) == expected, (cut, second)
            assert record.usage == {"prompt_tokens": 7, "completion_tokens": 1}, (cut, second)
    # and with \r\n line ends
    record = StreamRecord()

    async def crlf():
        yield whole.replace(b"\n", b"\r\n")

    out = b"".join(
        [c async for c in relay.sse_passthrough(crlf(), record, error_event=repr, strip_usage=True)]
    )
    assert out == expected.replace(b"\n", b"\r\n") and record.usage["prompt_tokens"] == 7


async def test_other_users_calls_are_theirs(fake_openai, alice, alice_token):
    bob = await sync_to_async(make_user)("bob", api_key=ALICE_KEY)
    bob_token = (await sync_to_async(token_create)(user=bob, name="t"))[1]
    await post_chat(AsyncClient(), chat_body(), token=alice_token)
    await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert sorted(r.user_id for r in await records()) == sorted([alice.pk, bob.pk])


@pytest.mark.parametrize(
    "params, asked, sent",
    [
        ({"stream": True}, False, {"include_usage": True}),
        ({"stream": True, "stream_options": {}}, False, {"include_usage": True}),
        (
            {"stream": True, "stream_options": {"include_usage": False, "x": 1}},
            False,
            {"include_usage": True, "x": 1},
        ),
        ({"stream": True, "stream_options": {"include_usage": True}}, True, {"include_usage": True}),
        ({"stream": True, "stream_options": "junk"}, True, "junk"),  # the upstream's to refuse
        (
            {"stream": False},
            False,
            None,
        ),  # a non-streamed answer carries its usage; OpenAI refuses the option
    ],
)
def test_usage_is_asked_for_on_every_streamed_call(params, asked, sent):
    assert ask_for_usage(params) is asked
    assert params.get("stream_options") == sent


def test_the_estimates_count_text_only_and_skip_the_framing_events():
    parts = [{"type": "text", "text": "abcdefgh"}, {"type": "image_url", "image_url": {"url": "data:..."}}]
    assert prompt_tokens_estimate([{"role": "user", "content": parts}]) == 3 + 3 + 2
    assert prompt_tokens_estimate([]) == 3
    assert completion_tokens_estimate(StreamRecord(content_chars=9)) == 3
    assert completion_tokens_estimate(StreamRecord(content_events=5, outcome="client_gone")) == 4  # - role
    assert (
        completion_tokens_estimate(StreamRecord(content_events=5, outcome="complete")) == 2
    )  # - finish, [DONE]
    assert completion_tokens_estimate(StreamRecord(content_events=1, outcome="complete")) == 0
