"""Upstream faults and impatient clients, over real HTTP (uvicorn) against the fake upstream.

Covered elsewhere, not repeated here: unreachable (502), slow before streaming (504), 5xx retried a
bounded number of times before streaming (test_chat_errors.py); dropped or unfinished streams
truncate the answer (test_chat_streaming.py); the same faults on /v1 (test_openai_compat.py).
"""

import asyncio
import json
import random
import time
from collections import Counter

import aiohttp
import psutil
import pytest
from django.core.cache import cache

from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body
from upstream import client as upstream
from upstream.limits import _slot_keys

pytestmark = pytest.mark.django_db(transaction=True)

V1_URL = "/v1/chat/completions"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def read_until_cut(resp: aiohttp.ClientResponse) -> bytes:
    received = b""
    with pytest.raises(aiohttp.ClientPayloadError):  # no terminating chunk: the client can tell
        async for chunk in resp.content.iter_any():
            received += chunk
    return received


@pytest.mark.parametrize(
    ("scenario", "expected"),
    [
        (Scenario(pieces=["one ", "two ", "three "], stall_after=2), b"one two "),
        (Scenario(pieces=["one ", "two ", "three "], malformed_after=1, gap=0.05), b"one "),
        (Scenario(pieces=["one ", "two ", "three "], fail_after=2, gap=0.05), b"one two "),
    ],
    ids=["stall", "malformed-sse", "dropped"],
)
async def test_failures_after_the_first_byte_truncate_and_are_never_retried(
    live_app, fake_openai, alice_token, settings, scenario, expected
):
    settings.OPENAI_TIMEOUT = 0.5  # the stall: half a second without a byte ends it
    fake_openai.scenario = scenario
    started = time.monotonic()
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        assert resp.status == 200
        received = await read_until_cut(resp)
    # Exactly what came before the fault (even a delta that shared a network read with the bad
    # event), and nothing after it.
    assert received == expected
    assert time.monotonic() - started < 3
    assert len(fake_openai.requests) == 1  # the answer had begun: a retry would repeat or mix it
    await fake_openai.wait_for(lambda s: s.open_streams == 0)  # and the stalled upstream was let go


@pytest.mark.slow
async def test_stall_is_measured_between_bytes_not_over_the_whole_answer(
    live_app, fake_openai, alice_token, settings
):
    settings.OPENAI_TIMEOUT = 0.5
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(8)], gap=0.2)  # 1.6 s, never 0.5 s idle
    async with (
        aiohttp.ClientSession() as session,
        session.post(live_app + CHAT_URL, data=json.dumps(chat_body()), headers=auth(alice_token)) as resp,
    ):
        assert await resp.read() == b"p0 p1 p2 p3 p4 p5 p6 p7 "


# --- a thousand streams cut short -------------------------------------------------------------------


def pool_connections() -> tuple[int, int]:
    """(in use, idle) upstream connections over every pooled client, every event loop."""
    in_use = idle = 0
    for per_loop in list(upstream._clients.values()):
        for client in per_loop.values():
            session = client._client._transport.client  # the SDK's aiohttp session, once it has been used
            if session is None or session.closed:  # not used yet, or closed by another test
                continue
            connector = session.connector
            in_use += len(connector._acquired)
            idle += sum(len(conns) for conns in connector._conns.values())
    return in_use, idle


def fake_side_connections(port: int) -> int:
    return sum(
        1
        for c in psutil.Process().net_connections("tcp")
        if c.laddr and c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
    )


async def tasks_on(loop: asyncio.AbstractEventLoop) -> int:
    async def count() -> int:
        return len(asyncio.all_tasks())

    return (
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(count(), loop)) - 1
    )  # not count() itself


async def settle(check, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "did not settle"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_thousand_streams_cut_at_random_points_leave_nothing_behind(
    live_asgi_server, live_app, fake_openai, alice, alice_token, settings
):
    settings.MAX_STREAMS_PER_USER = 64  # counted too: every slot must come back
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(30)], gap=0.01)  # ~0.3 s each
    server_loop = live_asgi_server.loop
    tasks_before = await tasks_on(server_loop)
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    limit = asyncio.Semaphore(50)

    async def one(session: aiohttp.ClientSession, n: int) -> None:
        path, body = (
            (CHAT_URL, chat_body())
            if n % 2
            else (
                V1_URL,
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True},
            )
        )
        # Three in ten are cut counting from the request (before, or as, the answer starts: the
        # view, the middleware, the first chunk); the rest somewhere in the answer, or not at all.
        early = rng.random() < 0.3
        cut_after = rng.uniform(0, 0.6) if early else rng.uniform(0, 0.3)
        async with limit:
            try:
                async with asyncio.timeout(cut_after if early else None) as deadline:
                    async with session.post(
                        live_app + path, data=json.dumps(body), headers=auth(alice_token)
                    ) as resp:
                        assert resp.status == 200, await resp.text()
                        # The rest are cut somewhere in the answer (or not at all, if it is shorter).
                        deadline.reschedule(asyncio.get_running_loop().time() + cut_after)
                        async for _ in resp.content.iter_any():
                            pass
                outcomes["completed"] += 1
            except TimeoutError:
                outcomes["cut early" if early else "cut mid-answer"] += 1

    started = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True)) as session:
        await asyncio.gather(*(one(session, n) for n in range(1000)))
    print(
        f"1000 streams (seed {seed}) in {time.monotonic() - started:.1f} s: {dict(outcomes)}; "
        f"upstream started {fake_openai.streams_started}, completed {fake_openai.streams_completed}, "
        f"cancelled {fake_openai.streams_cancelled}"
    )
    assert outcomes["cut early"] > 100 and outcomes["cut mid-answer"] > 300

    await fake_openai.wait_for(lambda s: s.open_streams == 0, timeout=10)
    assert fake_openai.streams_started == fake_openai.streams_completed + fake_openai.streams_cancelled

    async def nothing_in_use() -> bool:
        return pool_connections()[0] == 0

    await settle(nothing_in_use)
    # Every connection the fake still has open is an idle keep-alive one in our pools.
    assert fake_side_connections(fake_openai.port) == pool_connections()[1]

    async def tasks_back_to_before() -> bool:
        return await tasks_on(server_loop) <= tasks_before

    await settle(tasks_back_to_before)
    assert cache.get_many(_slot_keys(alice.pk, 64)) == {}  # every stream gave its slot back
