"""Streaming through the real ASGI server (uvicorn): incremental delivery, disconnects, failures."""

import asyncio
import json
import time

import aiohttp
import pytest

from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body

pytestmark = pytest.mark.django_db(transaction=True)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Token {token}"}


async def test_first_bytes_arrive_before_the_upstream_finishes(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(6)], gap=0.2)
    arrivals: list[tuple[float, bytes]] = []
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(
            live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)
        ) as resp:
            assert resp.status == 200
            async for chunk in resp.content.iter_any():
                arrivals.append((time.monotonic() - start, chunk))
    body = b"".join(chunk for _, chunk in arrivals)
    assert body == b"p0 p1 p2 p3 p4 p5 "
    # ~1 s of upstream gaps: the first piece must not wait for the last
    assert arrivals[0][0] < 0.5
    assert arrivals[-1][0] >= 1.0
    assert len(arrivals) >= 5  # delivered piece by piece, not buffered


async def test_client_disconnect_cancels_the_upstream(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(100)], gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)
        )
        assert resp.status == 200
        await resp.content.readany()
        resp.close()  # the browser's Stop button: the connection goes away
    await fake_openai.wait_for(lambda s: s.streams_cancelled >= 1, timeout=5)
    assert fake_openai.streams_cancelled == 1
    assert fake_openai.streams_completed == 0
    await fake_openai.wait_for(lambda s: s.open_streams == 0, timeout=5)


async def test_midstream_failure_truncates_the_response(live_app, fake_openai, alice_token, caplog):
    fake_openai.scenario = Scenario(pieces=["one ", "two ", "three "], fail_after=2, gap=0.05)
    received = b""
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                received += chunk
    assert received == b"one two "  # what came, and then no clean end


async def test_stream_ending_without_done_is_truncated(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["a", "b"], end_without_done=True)
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_complete_answer_ends_cleanly(live_app, fake_openai, alice_token):
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        assert await resp.read() == b"tok0 tok1 tok2 tok3 tok4 "
    assert fake_openai.streams_completed == 1


async def test_multibyte_text_split_across_network_reads(live_app, fake_openai, alice_token):
    pieces = ["日本語", "の", "テキスト", "😀", "é", "中文"]
    fake_openai.scenario = Scenario(pieces=pieces, split_bytes=True)
    chunks: list[bytes] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        async for chunk in resp.content.iter_any():
            chunks.append(chunk)
    for chunk in chunks:
        chunk.decode("utf-8")  # every write is whole characters
    assert b"".join(chunks).decode() == "".join(pieces)


async def test_error_before_streaming_has_real_status(live_app, fake_openai, bob_token):
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(bob_token)) as resp,
    ):
        assert resp.status == 400
        body = await resp.json(content_type=None)
    assert body["code"] == "openai_api_key_missing"
    assert body["settings_url"] == live_app + "/profile/settings/"


async def test_concurrent_streams_do_not_mix_users(
    live_app, fake_openai, alice_token, transactional_db, settings
):
    from asgiref.sync import sync_to_async

    from profiles.tokens import token_create
    from tests.conftest import make_user

    other = await sync_to_async(make_user)("frank", api_key="sk-frank-key-55555555")
    frank_token = (await sync_to_async(token_create)(user=other, name="tests"))[1]
    fake_openai.scenario = Scenario(pieces=["x"] * 5, gap=0.02)
    settings.MAX_STREAMS_PER_USER = 5  # five at once per user (the cap is tested in test_limits.py)

    async def one(token: str) -> int:
        async with (
            aiohttp.ClientSession() as session,
            session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(token)) as resp,
        ):
            await resp.read()
            return resp.status

    statuses = await asyncio.gather(*(one(t) for t in [alice_token, frank_token] * 5))
    assert statuses == [200] * 10
    keys = sorted(r.headers["authorization"] for r in fake_openai.requests)
    assert keys == ["Bearer sk-alice-test-0123456789abcdefWXYZ"] * 5 + ["Bearer sk-frank-key-55555555"] * 5


async def test_truncation_is_one_warning_not_a_server_traceback(live_app, fake_openai, alice_token, caplog):
    import logging

    fake_openai.scenario = Scenario(pieces=["one ", "two ", "three "], fail_after=1, gap=0.05)
    with caplog.at_level(logging.INFO):
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)
            ) as resp,
        ):
            with pytest.raises(aiohttp.ClientPayloadError):
                await resp.read()
        await asyncio.sleep(0.2)  # the server logs once the response is over
    warnings = [r for r in caplog.records if r.name == "upstream.relay" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "failed mid-response" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.name == "uvicorn.error" and r.levelno >= logging.ERROR]


def test_other_server_errors_keep_their_traceback(caplog):
    import logging

    import chatproject.asgi  # noqa: F401  (installs the filter)

    with caplog.at_level(logging.ERROR, logger="uvicorn.error"):
        try:
            raise RuntimeError("a real bug")
        except RuntimeError as exc:
            logging.getLogger("uvicorn.error").error("Exception in ASGI application\n", exc_info=exc)
    assert [r.exc_info[1] for r in caplog.records if r.name == "uvicorn.error"][0].args == ("a real bug",)
