"""POST /api/conversations/{id}/messages/: the answer as Server-Sent Events, saved as it streams, through
the real ASGI server (uvicorn) and the fake upstream; the stop endpoint; titles."""

import asyncio
import json
import logging
import time
import uuid
from typing import Any

import aiohttp
import pytest
from asgiref.sync import sync_to_async

from conversations.models import Conversation, Message
from conversations.services import conversation_create
from tests.fake_openai import Scenario
from tests.test_limits import _connections_per_worker, two_workers  # noqa: F401  (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


def messages_url(conversation_id: Any) -> str:
    return f"/api/conversations/{conversation_id}/messages/"


def stop_url(conversation_id: Any, message_id: Any) -> str:
    return f"/api/conversations/{conversation_id}/messages/{message_id}/stop/"


@pytest.fixture
def conversation(alice) -> Conversation:
    return conversation_create(owner=alice, system_prompt="Today is Saturday.")


@pytest.fixture
def no_auto_title(settings) -> None:
    settings.CONVERSATION_AUTO_TITLE = False  # most tests look at the answer alone


def parse_events(raw: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Each event: one `id:` line and one `data:` line (anything else fails the test)."""
    events = []
    assert raw.endswith(b"\n\n"), raw[-200:]
    for block in raw[:-2].split(b"\n\n"):
        id_line, data_line = block.split(b"\n")
        assert id_line.startswith(b"id: ") and data_line.startswith(b"data: "), block
        events.append((int(id_line[4:]), json.loads(data_line[6:])))
    return events


class Reader:
    """An open SSE response, read event by event."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.buffer = b""
        self.events: list[dict[str, Any]] = []
        self.raw = b""

    async def next(self) -> dict[str, Any]:
        while b"\n\n" not in self.buffer:
            chunk = await self.response.content.readany()
            if not chunk:
                raise EOFError(self.buffer, self.events[-2:])
            self.buffer += chunk
            self.raw += chunk
        block, self.buffer = self.buffer.split(b"\n\n", 1)
        event = json.loads(block.split(b"\n")[1][6:])
        self.events.append(event)
        return event

    async def until(self, kind: str) -> dict[str, Any]:
        while (event := await self.next())["type"] != kind:
            pass
        return event

    def text(self) -> str:
        return "".join(e["text"] for e in self.events if e["type"] == "delta")


async def post(session: aiohttp.ClientSession, url: str, token: str, body: dict[str, Any]):
    return await session.post(url, data=json.dumps(body), headers=auth(token))


async def ask(live_app: str, token: str, conversation_id: Any, **body: Any) -> tuple[int, bytes, str]:
    async with (
        aiohttp.ClientSession() as session,
        await post(session, live_app + messages_url(conversation_id), token, body) as resp,
    ):
        return resp.status, await resp.read(), resp.headers.get("Content-Type", "")


@sync_to_async
def saved(message_id: Any) -> Message:
    return Message.objects.get(pk=message_id)


@sync_to_async
def reloaded(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


@sync_to_async
def assistant_count(conversation: Conversation) -> int:
    return Message.objects.filter(conversation=conversation, role="assistant").count()


@sync_to_async
def message_count(conversation: Conversation) -> int:
    return Message.objects.filter(conversation=conversation).count()


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --- The event stream ------------------------------------------------------------------------------


async def test_the_answer_streams_as_events_with_increasing_ids(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo ", "wörld"])
    status, raw, content_type = await ask(live_app, alice_token, conversation.pk, content="Say hello")
    assert status == 200 and content_type.startswith("text/event-stream")
    events = parse_events(raw)
    ids = [event_id for event_id, _ in events]
    assert ids == list(range(1, len(events) + 1))
    kinds = [event["type"] for _, event in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and set(kinds[1:-1]) == {"delta"}
    start, done = events[0][1], events[-1][1]
    assert start["user_message"]["content"] == "Say hello" and start["user_message"]["role"] == "user"
    assert start["assistant_message"]["status"] == "streaming"
    assert start["assistant_message"]["parent_id"] == start["user_message"]["id"]
    assert "".join(event["text"] for _, event in events if event["type"] == "delta") == "Hello wörld"
    message = done["message"]
    assert message["id"] == start["assistant_message"]["id"]
    assert message["status"] == "complete" and message["content"] == "Hello wörld"
    assert message["finish_reason"] == "stop"
    assert message["time_to_first_token"] > 0 and message["duration"] >= message["time_to_first_token"]

    answer = await saved(message["id"])
    assert (answer.status, answer.content, answer.finish_reason) == ("complete", "Hello wörld", "stop")
    assert answer.time_to_first_token is not None and answer.duration is not None
    assert answer.model == "gpt-4o-mini"
    # The upstream got the system prompt first, then the question.
    assert fake_openai.last_request.json["messages"] == [
        {"role": "system", "content": "Today is Saturday."},
        {"role": "user", "content": "Say hello"},
    ]
    refreshed = await reloaded(conversation)
    assert refreshed.current_leaf_id == uuid.UUID(message["id"])


@pytest.mark.slow
async def test_the_answer_is_saved_while_it_streams(
    live_app, fake_openai, alice_token, conversation, no_auto_title, settings
):
    settings.MESSAGE_FLUSH_SECONDS = 0.2
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(40)], gap=0.1)  # ~4 s
    async with aiohttp.ClientSession() as session:
        resp = await post(session, live_app + messages_url(conversation.pk), alice_token, {"content": "Go"})
        reader = Reader(resp)
        start = await reader.until("start")
        answer_id = start["assistant_message"]["id"]
        assert (await saved(answer_id)).status == "streaming"  # written before the first event
        while len(reader.text()) < len("p0 p1 p2 p3 p4 p5 "):
            await reader.next()

        async def flushed_since() -> bool:  # (a flush or two: 0.2 s apart)
            return len((await saved(answer_id)).content) >= len("p0 p1 p2 p3 p4 p5 ")

        await wait_until(flushed_since, timeout=2)
        midway = await saved(answer_id)
        done = await reader.until("done")
        resp.close()
    whole = "".join(f"p{i} " for i in range(40))
    assert midway.status == "streaming"
    assert len(whole) > len(midway.content) and whole.startswith(midway.content)
    final = await saved(answer_id)
    assert final.status == "complete"
    assert final.content == reader.text() == whole == done["message"]["content"]


@pytest.mark.slow
async def test_the_text_is_written_at_most_once_per_flush_interval_not_per_chunk(
    live_app, fake_openai, alice_token, conversation, no_auto_title, settings, caplog
):
    settings.MESSAGE_FLUSH_SECONDS = 0.3
    settings.DEBUG = True  # every query is logged (django.db.backends), whichever thread runs it
    caplog.set_level(logging.DEBUG, logger="django.db.backends")
    pieces = 40
    fake_openai.scenario = Scenario(pieces=["x"] * pieces, gap=0.03)  # ~1.2 s
    status, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Go")
    assert status == 200
    done = parse_events(raw)[-1][1]
    assert done["type"] == "done" and done["message"]["content"] == "x" * pieces
    await asyncio.sleep(0.2)
    updates = [
        record.getMessage()
        for record in caplog.records
        if record.name == "django.db.backends" and 'UPDATE "conversations_message"' in record.getMessage()
    ]
    # ~4 flushes in ~1.2 s, plus the last write: nowhere near one per chunk.
    assert 2 <= len(updates) <= 8, len(updates)


async def test_stop_from_another_connection_keeps_the_partial_answer_and_cancels_the_upstream(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=[f"w{i} " for i in range(200)], gap=0.05)
    async with aiohttp.ClientSession() as session, aiohttp.ClientSession() as other:
        resp = await post(session, live_app + messages_url(conversation.pk), alice_token, {"content": "Go"})
        reader = Reader(resp)
        answer_id = (await reader.until("start"))["assistant_message"]["id"]
        for _ in range(3):
            await reader.until("delta")
        async with other.post(
            live_app + stop_url(conversation.pk, answer_id), headers=auth(alice_token)
        ) as stop:
            assert stop.status == 200
            stopped = await stop.json()
        assert stopped["status"] == "stopped" and stopped["id"] == answer_id
        done = await reader.until("done")  # the streaming connection ends too, cleanly
        assert await resp.content.read() == b""
        resp.close()
    assert done["message"]["status"] == "stopped"
    shown = reader.text()
    assert done["message"]["content"] == stopped["content"] == shown  # all of it, nothing more
    final = await saved(answer_id)
    assert (final.status, final.content) == ("stopped", shown)
    assert 3 <= len(shown.split()) < 200
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)
    assert fake_openai.streams_completed == 0


async def test_a_client_that_goes_away_leaves_an_interrupted_answer_with_what_was_sent(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=[f"w{i} " for i in range(200)], gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await post(session, live_app + messages_url(conversation.pk), alice_token, {"content": "Go"})
        reader = Reader(resp)
        answer_id = (await reader.until("start"))["assistant_message"]["id"]
        for _ in range(4):
            await reader.until("delta")
        resp.close()  # the tab is closed
    received = reader.text()
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)

    async def ended() -> bool:
        return (await saved(answer_id)).status != "streaming"

    await wait_until(ended)
    final = await saved(answer_id)
    assert final.status == "interrupted" and final.error_code == "client_gone"
    # What reached the client is all there (the server may have relayed a little more before it knew).
    assert final.content.startswith(received) and len(final.content.split()) < 200


async def test_an_upstream_failure_mid_stream_ends_with_an_error_event_and_an_interrupted_answer(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=["one ", "two ", "three "], fail_after=2, gap=0.05)
    status, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Count")
    assert status == 200
    events = [event for _, event in parse_events(raw)]
    assert [e["type"] for e in events] == ["start", "delta", "delta", "error"]
    error = events[-1]
    assert error["code"] == "openai_interrupted" and error["message"] and error["settings_url"]
    assert error["assistant_message"]["status"] == "interrupted"
    final = await saved(events[0]["assistant_message"]["id"])
    assert (final.status, final.content, final.error_code) == (
        "interrupted",
        "one two ",
        "openai_interrupted",
    )


async def test_an_upstream_failure_before_any_text_is_an_error_answer(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=["one "], fail_after=0)
    status, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Count")
    events = [event for _, event in parse_events(raw)]
    assert status == 200 and [e["type"] for e in events] == ["start", "error"]
    final = await saved(events[0]["assistant_message"]["id"])
    assert (final.status, final.content) == ("error", "")


# --- Errors before the answer starts: JSON, nothing saved ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"content": "Hi", "model": "no-such-model"}, 400, "openai_model_not_found"),
        ({"content": ""}, 400, "invalid_request"),
        ({"content": "Hi", "temperature": 3}, 400, "invalid_request"),
        ({"content": "Hi", "parent_id": "not-a-uuid"}, 400, "invalid_request"),
        ({"content": "Hi", "parent_id": str(uuid.uuid4())}, 404, "not_found"),
        ({}, 400, "not_a_question"),  # nothing to answer again in an empty conversation
    ],
)
async def test_errors_before_the_answer_starts_are_json_and_save_nothing(
    live_app, fake_openai, alice_token, conversation, body, status, code
):
    got, raw, content_type = await ask(live_app, alice_token, conversation.pk, **body)
    assert (got, json.loads(raw)["code"]) == (status, code)
    assert content_type == "application/json"
    assert await message_count(conversation) == 0


async def test_an_incorrect_key_is_a_json_error_and_saves_nothing(
    live_app, fake_openai, alice, alice_token, conversation
):
    from profiles.services import profile_for, profile_set_openai_key

    await sync_to_async(
        lambda: profile_set_openai_key(profile=profile_for(user=alice), api_key="sk-bad-0123456789")
    )()
    got, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Hi")
    body = json.loads(raw)
    assert (got, body["code"]) == (400, "openai_api_key_invalid") and "/settings" in body["settings_url"]
    assert await message_count(conversation) == 0


async def test_a_missing_key_is_a_json_error_and_saves_nothing(live_app, fake_openai, bob, bob_token):
    conversation = await sync_to_async(conversation_create)(owner=bob)
    got, raw, _ = await ask(live_app, bob_token, conversation.pk, content="Hi")
    assert got == 400 and json.loads(raw)["code"] == "openai_api_key_missing"
    assert await message_count(conversation) == 0


async def test_the_stream_cap_is_a_json_error_and_saves_no_answer(
    live_app, fake_openai, alice_token, conversation, no_auto_title, settings
):
    settings.MAX_STREAMS_PER_USER = 1
    fake_openai.scenario = Scenario(pieces=["x"] * 100, gap=0.05)
    async with aiohttp.ClientSession() as session:
        first = await post(session, live_app + messages_url(conversation.pk), alice_token, {"content": "One"})
        await Reader(first).until("delta")
        got, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Two")
        assert (got, json.loads(raw)["code"]) == (429, "too_many_streams")
        assert await assistant_count(conversation) == 1  # the first one's
        first.close()


async def test_a_full_conversation_is_refused(
    live_app, fake_openai, alice_token, conversation, no_auto_title, settings
):
    settings.CONVERSATION_MAX_MESSAGES = 2
    assert (await ask(live_app, alice_token, conversation.pk, content="One"))[0] == 200
    got, raw, _ = await ask(live_app, alice_token, conversation.pk, content="Two")
    assert (got, json.loads(raw)["code"]) == (400, "conversation_full")
    assert await message_count(conversation) == 2


async def test_another_users_conversation_is_not_found(live_app, fake_openai, bob_token, conversation):
    got, raw, _ = await ask(live_app, bob_token, conversation.pk, content="Hi")
    assert (got, json.loads(raw)["code"]) == (404, "not_found")
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + stop_url(conversation.pk, uuid.uuid4()), headers=auth(bob_token)) as resp,
    ):
        assert resp.status == 404
    assert len(fake_openai.requests) == 0


async def test_an_unknown_conversation_is_not_found(live_app, fake_openai, alice_token):
    got, raw, _ = await ask(live_app, alice_token, uuid.uuid4(), content="Hi")
    assert (got, json.loads(raw)["code"]) == (404, "not_found")


async def test_a_session_caller_needs_the_csrf_token(live_app, fake_openai, alice, conversation):
    from django.test import AsyncClient

    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(alice)
    response = await client.post(
        messages_url(conversation.pk), {"content": "Hi"}, content_type="application/json"
    )
    assert response.status_code == 403 and response.json()["code"] == "csrf_failed"


# --- Branches: regenerate and edit ------------------------------------------------------------------


async def answer_of(live_app: str, token: str, conversation_id: Any, **body: Any) -> list[dict[str, Any]]:
    status, raw, _ = await ask(live_app, token, conversation_id, **body)
    assert status == 200, raw
    events = [event for _, event in parse_events(raw)]
    assert events[-1]["type"] == "done"
    return events


async def test_regenerate_and_edit_add_siblings_and_switch_branch(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=["answer"])
    first = await answer_of(live_app, alice_token, conversation.pk, content="First")
    question = first[0]["user_message"]
    answer_one = first[0]["assistant_message"]
    assert question["parent_id"] is None and question["sibling_ids"] == [question["id"]]

    # Regenerate (no content, no parent_id: the current branch's last question).
    again = await answer_of(live_app, alice_token, conversation.pk)
    start = again[0]
    assert start["user_message"] is None
    answer_two = start["assistant_message"]
    assert answer_two["parent_id"] == question["id"]
    assert answer_two["sibling_ids"] == [answer_one["id"], answer_two["id"]]
    assert fake_openai.last_request.json["messages"] == [
        {"role": "system", "content": "Today is Saturday."},
        {"role": "user", "content": "First"},
    ]
    # Regenerate naming the question; naming an answer is refused.
    third = (await answer_of(live_app, alice_token, conversation.pk, parent_id=question["id"]))[0]
    assert len(third["assistant_message"]["sibling_ids"]) == 3
    status, raw, _ = await ask(live_app, alice_token, conversation.pk, parent_id=answer_one["id"])
    assert (status, json.loads(raw)["code"]) == (400, "not_a_question")

    # Edit the first question: a new root beside it, answered from there.
    edited = (await answer_of(live_app, alice_token, conversation.pk, content="Edited", parent_id=None))[0]
    assert edited["user_message"]["parent_id"] is None
    assert edited["user_message"]["sibling_ids"] == [question["id"], edited["user_message"]["id"]]
    assert fake_openai.last_request.json["messages"][1:] == [{"role": "user", "content": "Edited"}]

    # The new branch is the current one: the next question follows it.
    await answer_of(live_app, alice_token, conversation.pk, content="Next")
    assert fake_openai.last_request.json["messages"][1:] == [
        {"role": "user", "content": "Edited"},
        {"role": "assistant", "content": "answer"},
        {"role": "user", "content": "Next"},
    ]
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{live_app}/api/conversations/{conversation.pk}/", headers=auth(alice_token)) as resp,
    ):
        shown = (await resp.json())["messages"]
    assert [m["content"] for m in shown] == ["Edited", "answer", "Next", "answer"]
    assert shown[0]["sibling_ids"] == [question["id"], edited["user_message"]["id"]]
    assert await assistant_count(conversation) == 5  # nothing deleted


# --- Titles ------------------------------------------------------------------------------------------


@sync_to_async
def title_of(conversation: Conversation) -> str:
    return Conversation.objects.get(pk=conversation.pk).title


@pytest.mark.slow
async def test_the_first_line_of_the_first_question_is_the_title_at_once(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    fake_openai.scenario = Scenario(pieces=["x"] * 50, gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await post(
            session,
            live_app + messages_url(conversation.pk),
            alice_token,
            {"content": "\n  Plan a trip  \nto Rome"},
        )
        start = await Reader(resp).until("start")
        assert start["conversation"] == {"id": str(conversation.pk), "title": "Plan a trip"}
        assert await title_of(conversation) == "Plan a trip"  # while the answer still streams
        resp.close()
    await answer_of(live_app, alice_token, conversation.pk, content="Another question")
    assert await title_of(conversation) == "Plan a trip"


async def test_a_short_title_is_generated_after_the_first_answer(
    live_app, fake_openai, alice_token, conversation, settings
):
    settings.CONVERSATION_TITLE_MODEL = "gpt-4o-mini"
    fake_openai.scenario = Scenario(pieces=['"Roman ', "holiday", '."'])
    events = await answer_of(live_app, alice_token, conversation.pk, content="Plan a trip to Rome\nin May")
    assert events[-1]["message"]["status"] == "complete"

    async def titled() -> bool:
        return await title_of(conversation) == "Roman holiday"

    await wait_until(titled, timeout=10)

    def title_requests(about: str) -> list[dict[str, Any]]:
        return [
            r.json
            for r in fake_openai.requests
            if r.json and r.json.get("stream") is False and about in str(r.json.get("messages"))
        ]

    [title_request] = title_requests("Plan a trip to Rome")
    assert title_request["model"] == "gpt-4o-mini"
    # Only the first answer gets one.
    await answer_of(live_app, alice_token, conversation.pk, content="And in June?")
    await asyncio.sleep(0.3)
    assert title_requests("And in June?") == [] and len(title_requests("Plan a trip to Rome")) == 1


async def test_a_failing_title_request_leaves_the_first_line_and_the_answer_alone(
    live_app, fake_openai, alice_token, conversation, settings
):
    settings.CONVERSATION_TITLE_MODEL = "no-such-model"  # the fake answers 404
    events = await answer_of(live_app, alice_token, conversation.pk, content="Plan a trip")
    assert events[-1]["message"]["status"] == "complete"
    await fake_openai.wait_for(
        lambda s: any(r.json and r.json.get("model") == "no-such-model" for r in s.requests)
    )
    await asyncio.sleep(0.2)
    assert await title_of(conversation) == "Plan a trip"
    # And the conversation goes on.
    assert (await answer_of(live_app, alice_token, conversation.pk, content="More"))[-1]["type"] == "done"


async def test_a_rename_before_the_generated_title_arrives_wins(
    live_app, fake_openai, alice_token, conversation, settings
):
    fake_openai.scenario = Scenario(pieces=["Generated"], first_delay=0.3)
    events = await answer_of(live_app, alice_token, conversation.pk, content="Question")
    assert events[-1]["type"] == "done"
    await sync_to_async(Conversation.objects.filter(pk=conversation.pk).update)(title="Mine")
    await fake_openai.wait_for(lambda s: s.streams_completed >= 1 and len(s.requests) >= 2)
    await asyncio.sleep(0.5)
    assert await title_of(conversation) == "Mine"


async def test_no_title_is_generated_when_auto_titles_are_off(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    await answer_of(live_app, alice_token, conversation.pk, content="Question")
    await asyncio.sleep(0.3)
    assert len(fake_openai.requests) == 1


# --- Stop through another worker process -------------------------------------------------------------


@pytest.mark.slow
async def test_stop_through_another_worker_process_stops_the_answer(two_workers, fake_openai):  # noqa: F811
    """uvicorn --workers 2: the stop request reaches the worker that does not stream the answer, which
    marks it stopped in the database; the streaming worker sees it at its next flush (within
    MESSAGE_FLUSH_SECONDS), cancels the upstream and writes the answer, ended `stopped`."""
    server, url, token = two_workers
    port = int(url.rsplit(":", 1)[1])
    fake_openai.scenario = Scenario(pieces=[f"w{i} " for i in range(400)], gap=0.05)  # 20 s
    headers = auth(token)
    sessions: list[aiohttp.ClientSession] = []
    try:
        sessions.append(streaming := aiohttp.ClientSession())
        async with streaming.post(f"{url}/api/conversations/", json={}, headers=headers) as created:
            conversation_id = (await created.json())["id"]
        resp = await streaming.post(
            url + messages_url(conversation_id), json={"content": "Go"}, headers=headers
        )
        reader = Reader(resp)
        answer_id = (await reader.until("start"))["assistant_message"]["id"]
        await reader.until("delta")
        [holder] = [pid for pid, count in _connections_per_worker(server, port).items() if count]

        # New connections, kept open, until one is served by the other worker.
        for _ in range(100):
            sessions.append(other := aiohttp.ClientSession())
            async with other.get(f"{url}/api/conversations/{conversation_id}/", headers=headers) as probe:
                await probe.read()
            per_worker = _connections_per_worker(server, port)
            if all(per_worker.values()):
                break
            await other.close()
            sessions.pop()
            await asyncio.sleep(0.02)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        assert per_worker[holder] == 1  # the new connection is the other worker's

        async with other.post(url + stop_url(conversation_id, answer_id), headers=headers) as stop:
            assert stop.status == 202  # not streamed there: stopped through the database
            assert (await stop.json())["status"] == "stopped"
        stopped_at = time.monotonic()
        done = await reader.until("done")
        assert time.monotonic() - stopped_at < 3  # within a flush interval (1 s) and a little
        resp.close()
        assert done["message"]["status"] == "stopped"
        assert done["message"]["content"] == reader.text() and 1 <= len(reader.text().split()) < 400
        async with other.get(f"{url}/api/conversations/{conversation_id}/", headers=headers) as shown:
            answer = (await shown.json())["messages"][-1]
        assert (answer["id"], answer["status"], answer["content"]) == (answer_id, "stopped", reader.text())
        await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


async def test_a_stop_marked_in_the_database_stops_the_stream_at_the_next_flush(
    live_app, fake_openai, alice_token, conversation, no_auto_title, settings
):
    """What another worker's stop endpoint does (answers.answer_stop_elsewhere), seen by this one."""
    settings.MESSAGE_FLUSH_SECONDS = 0.2
    fake_openai.scenario = Scenario(pieces=[f"w{i} " for i in range(200)], gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await post(session, live_app + messages_url(conversation.pk), alice_token, {"content": "Go"})
        reader = Reader(resp)
        answer_id = (await reader.until("start"))["assistant_message"]["id"]
        await reader.until("delta")
        await sync_to_async(Message.objects.filter(pk=answer_id).update)(status="stopped")
        done = await reader.until("done")
        resp.close()
    assert done["message"]["status"] == "stopped" and done["message"]["content"] == reader.text()
    final = await saved(answer_id)
    assert (final.status, final.content) == ("stopped", reader.text())
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)


def test_the_openapi_schema_describes_the_streaming_and_stop_endpoints(transactional_db):
    from django.test import Client
    from drf_spectacular.validation import validate_schema

    schema = Client().get("/api/schema/", {"format": "json"}).json()
    validate_schema(schema)
    paths = schema["paths"]
    answer = paths["/api/conversations/{conversation_id}/messages/"]["post"]
    assert "text/event-stream" in answer["responses"]["200"]["content"]
    assert set(answer["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "content",
        "model",
        "temperature",
        "parent_id",
    }
    stop = paths["/api/conversations/{conversation_id}/messages/{message_id}/stop/"]["post"]
    assert {"200", "202", "404"} <= set(stop["responses"])


async def test_the_upstream_call_is_recorded_in_usage_with_its_answer(
    live_app, fake_openai, alice_token, conversation, no_auto_title
):
    from usage.models import CONVERSATION, UsageRecord

    events = await answer_of(live_app, alice_token, conversation.pk, content="Hi")
    answer_id = uuid.UUID(events[0]["assistant_message"]["id"])

    @sync_to_async
    def records() -> list[UsageRecord]:
        return list(UsageRecord.objects.filter(entry_point=CONVERSATION))

    async def recorded() -> bool:
        return bool(await records())

    await wait_until(recorded)
    [record] = await records()
    assert record.message_id == answer_id
    assert fake_openai.last_request.json["stream_options"] == {"include_usage": True}
    assert "usage" not in events[-1]["message"]["content"]
