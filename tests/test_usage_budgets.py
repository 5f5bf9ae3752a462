"""Monthly budgets: off by default; past the lower of the staff's and the user's ceiling, new requests
on every entry point are refused with 429 budget_exceeded and a link to the usage page, while an answer
already streaming is finished; the spend comes from the database, so two worker processes agree."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from tests.conftest import ALICE_KEY, TEST_RING_KEYS
from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body, json_of, post_chat
from tests.test_limits import ROOT, _connections_per_worker, _free_port, _record_output, _wait_until_serving
from upstream.record import StreamRecord
from usage.budgets import budget_set_staff_limit, budget_set_user_limit
from usage.models import Budget, UsageRecord
from usage.recording import Call, usage_record_create, usage_writes_settled

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("seeded_prices")]

COMPLETIONS = "/v1/chat/completions"
USAGE_URL = "http://testserver/usage/"


@pytest.fixture(autouse=True)
def _no_cached_spend(settings):
    settings.USAGE_BUDGET_CACHE_SECONDS = 0  # every check reads the database (the cache is tested apart)


def spend(user, dollars: str, *, when: datetime | None = None) -> None:
    """A recorded call of `dollars` (o1 output at $60 per million tokens)."""
    tokens = int(Decimal(dollars) / Decimal(60) * 1_000_000)
    record = StreamRecord(
        started_at=when or datetime.now(UTC),
        outcome="complete",
        called_upstream=True,
        usage={"prompt_tokens": 0, "completion_tokens": tokens},
    )
    usage_record_create(call=Call(user_id=user.pk, entry_point="v1", model="o1", messages=[]), record=record)


async def post_v1(token: str, **body):
    data = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], **body}
    response = await AsyncClient().generic(
        "POST", COMPLETIONS, json.dumps(data).encode(), content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    if response.streaming:
        return response, b"".join([part async for part in response.streaming_content])
    return response, response.content


async def test_without_a_budget_nothing_is_refused(fake_openai, alice, alice_token):
    await sync_to_async(spend)(alice, "1000")
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200
    assert not await sync_to_async(Budget.objects.exists)()  # off by default: no row


async def test_past_the_budget_the_chat_api_is_429_with_a_link_to_the_usage_page(
    fake_openai, alice, alice_token
):
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("5"))
    await sync_to_async(spend)(alice, "4.99")
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200  # under it: allowed
    await sync_to_async(spend)(alice, "0.02")
    requests_before = len(fake_openai.requests)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 429
    body = json_of(content)
    assert body["code"] == "budget_exceeded" and set(body) == {"message", "code", "settings_url"}
    assert "$5.00" in body["message"] and USAGE_URL in body["message"]
    assert body["settings_url"] == "http://testserver/profile/settings/"
    assert len(fake_openai.requests) == requests_before  # refused before the upstream


async def test_past_the_budget_v1_is_429_in_openais_shape(fake_openai, alice, alice_token):
    await sync_to_async(budget_set_user_limit)(user=alice, limit=Decimal("1"))
    await sync_to_async(spend)(alice, "1.01")
    for stream in (True, False):
        response, content = await post_v1(alice_token, stream=stream)
        assert response.status_code == 429
        error = json.loads(content)["error"]
        assert error["code"] == "budget_exceeded" and USAGE_URL in error["message"]


async def test_the_lower_of_the_two_ceilings_wins(fake_openai, alice, alice_token):
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("10"))
    await sync_to_async(budget_set_user_limit)(user=alice, limit=Decimal("2"))
    await sync_to_async(spend)(alice, "3")
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 429
    await sync_to_async(budget_set_user_limit)(user=alice, limit=None)  # only the staff's $10 now
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 200
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("2.50"))
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 429


async def test_last_months_spend_does_not_count(fake_openai, alice, alice_token):
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("1"))
    first_of_month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    await sync_to_async(spend)(alice, "50", when=first_of_month - timedelta(seconds=1))
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 200


async def test_an_answer_already_streaming_is_not_cut(fake_openai, alice, alice_token):
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("1"))
    fake_openai.scenario = Scenario(pieces=["x"] * 20, gap=0.01)
    streaming = await AsyncClient().generic(
        "POST", CHAT_URL, json.dumps(chat_body()).encode(), content_type="",
        headers={"Authorization": f"Token {alice_token}"},
    )  # fmt: skip
    assert streaming.status_code == 200
    await sync_to_async(spend)(alice, "2")  # another call (another tab, another worker) spends it all
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 429
    assert b"".join([part async for part in streaming.streaming_content]) == b"x" * 20  # finished whole
    await usage_writes_settled()
    assert (
        await sync_to_async(UsageRecord.objects.filter(outcome="complete", model="gpt-4o-mini").count)() == 1
    )


async def test_a_new_budget_applies_at_once_despite_the_cache(fake_openai, alice, alice_token, settings):
    settings.USAGE_BUDGET_CACHE_SECONDS = 300
    await sync_to_async(spend)(alice, "3")
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[
        0
    ].status_code == 200  # cached: none
    await sync_to_async(budget_set_user_limit)(user=alice, limit=Decimal("2"))  # drops the cached figure
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 429


async def test_a_spend_shows_within_the_cache_time(fake_openai, alice, alice_token, settings):
    """How stale the check can be: USAGE_BUDGET_CACHE_SECONDS (here 1 s)."""
    settings.USAGE_BUDGET_CACHE_SECONDS = 1
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("1"))
    assert (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 200  # cached
    await sync_to_async(spend)(alice, "5")
    deadline = time.monotonic() + 3
    while (await post_chat(AsyncClient(), chat_body(), token=alice_token))[0].status_code == 200:
        assert time.monotonic() < deadline, "the spend never showed"
        await asyncio.sleep(0.2)


async def test_a_budget_check_that_cannot_run_allows_the_request(
    fake_openai, alice, alice_token, settings, caplog
):
    await sync_to_async(budget_set_staff_limit)(user=alice, limit=Decimal("1"))
    await sync_to_async(spend)(alice, "2")
    # A cache that cannot be reached (nothing listens on port 9): the budget, like the stream cap,
    # lets the request through rather than take the service down, and says so in the log.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache",
                                   "LOCATION": "redis://127.0.0.1:9/0"}}  # fmt: skip
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200
    assert "budget check unavailable; allowing the request" in caplog.text


# --- two worker processes -------------------------------------------------------------------------------


@pytest.fixture
def two_workers_with_a_budget(tmp_path, fake_openai):
    """uvicorn --workers 2 on a file SQLite database, each worker with its own in-memory cache (no Redis):
    what they agree on can only come from the database. alice has a $0.01 budget."""
    port = _free_port()
    db_path = tmp_path / "db.sqlite3"
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{db_path}",
        "REDIS_URL": "",
        "USAGE_BUDGET_CACHE_SECONDS": "1",
        "MAX_STREAMS_PER_USER": "0",
        "PROFILE_ENCRYPTION_KEYS": ",".join(TEST_RING_KEYS),
        "OPENAI_BASE_URL": fake_openai.base_url,
        "OPENAI_MAX_RETRIES": "0",
        "LOG_LEVEL": "WARNING",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True, cwd=ROOT)
    token = subprocess.run(
        [
            *manage,
            "shell",
            "-c",
            "from decimal import Decimal; from tests.conftest import make_user; "
            "from profiles.tokens import token_create; from usage.budgets import budget_set_staff_limit; "
            f"alice = make_user('alice', api_key={ALICE_KEY!r}); "
            "budget_set_staff_limit(user=alice, limit=Decimal('0.01')); "
            "print(token_create(user=alice, name='tests')[1])",
        ],
        env=env, check=True, cwd=ROOT, capture_output=True, text=True,
    ).stdout.split()[-1]  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "chatproject.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--no-access-log"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(server, url, workers=2)
        yield server, url, token, db_path
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
        _record_output(output)


def recorded_cost(db_path) -> Decimal:
    with sqlite3.connect(db_path) as db:
        (total,) = db.execute("SELECT COALESCE(SUM(cost), 0) FROM usage_usagerecord").fetchone()
    return Decimal(str(total))


@pytest.mark.slow
async def test_two_workers_enforce_the_budget_from_the_database(two_workers_with_a_budget, fake_openai):
    server, url, token, db_path = two_workers_with_a_budget
    port = int(url.rsplit(":", 1)[1])
    headers = {"Authorization": f"Bearer {token}"}
    cheap = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    async def status(session: aiohttp.ClientSession, body: dict) -> int:
        async with session.post(url + COMPLETIONS, json=body, headers=headers) as resp:
            await resp.read()  # the connection goes back to its session's pool, still open on its worker
            return resp.status

    sessions: list[aiohttp.ClientSession] = []

    async def new_connection() -> int:
        sessions.append(session := aiohttp.ClientSession())  # a connection of its own, kept open
        return await status(session, cheap)

    try:
        # Cheap calls (millionths of a dollar), each on a connection of its own, until both workers
        # hold some of them (the kernel picks the worker).
        statuses = list(await asyncio.gather(*(new_connection() for _ in range(12))))
        while not all((per_worker := _connections_per_worker(server, port)).values()) and len(statuses) < 200:
            statuses.append(await new_connection())
            await asyncio.sleep(0.02)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        assert set(statuses) == {200}
        # One expensive call, on whichever worker: 300 tokens of o1 output at $60 per million = $0.018.
        fake_openai.scenario = Scenario(pieces=["x"] * 300)
        assert await status(sessions[0], {**cheap, "model": "o1"}) == 200
        fake_openai.scenario = None
        deadline = time.monotonic() + 10
        while recorded_cost(db_path) < Decimal("0.01"):
            assert time.monotonic() < deadline, "the expensive call was not recorded"
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.2)  # USAGE_BUDGET_CACHE_SECONDS: what either worker cached has expired
        # Every connection, so both workers answer: all refused, whichever worker recorded the spend.
        refused = await asyncio.gather(*(status(session, cheap) for session in sessions))
        assert set(refused) == {429}, refused
        assert all(_connections_per_worker(server, port).values())
    finally:
        await asyncio.gather(*(session.close() for session in sessions))
