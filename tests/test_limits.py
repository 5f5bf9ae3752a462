"""The per-user cap on concurrent streams: 429 past it, a slot freed however a stream ends, shared
between worker processes through Redis, and never held for ever by a worker that died."""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from django.core.cache import cache
from django.test import AsyncClient

from core.errors import ApiError
from tests.conftest import ALICE_KEY, TEST_RING_KEYS
from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body, json_of, post_chat
from upstream.limits import acquire_stream_slot

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_slots(settings):
    settings.MAX_STREAMS_PER_USER = 1
    cache.clear()
    yield
    cache.clear()


async def stream_status(live_app: str, token: str) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            live_app + CHAT_URL, data=json.dumps(chat_body()), headers={"Authorization": f"Token {token}"}
        ) as resp,
    ):
        await resp.read()
        return resp.status


async def test_past_the_cap_is_429_with_a_clear_message(fake_openai, alice, alice_token):
    held = await acquire_stream_slot(user_id=alice.pk)  # alice's one stream is already open
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 429
    body = json_of(content)
    assert body["code"] == "too_many_streams"
    assert "at most 1 per user" in body["message"] and "try again" in body["message"]
    assert body["settings_url"]
    assert fake_openai.requests == []  # refused before anything went upstream
    await held.release()
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200


async def test_cap_is_per_user(fake_openai, alice, transactional_db):
    from asgiref.sync import sync_to_async

    from profiles.tokens import token_create
    from tests.conftest import make_user

    held = await acquire_stream_slot(user_id=alice.pk)
    frank = await sync_to_async(make_user)("frank", api_key="sk-frank-key-55555555")
    token = (await sync_to_async(token_create)(user=frank, name="tests"))[1]
    response, _ = await post_chat(AsyncClient(), chat_body(), token=token)
    assert response.status_code == 200
    await held.release()


async def test_completed_streams_give_their_slot_back(fake_openai, alice_token):
    for _ in range(3):
        response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
        assert (response.status_code, content) == (200, b"tok0 tok1 tok2 tok3 tok4 ")


async def test_errors_before_streaming_give_the_slot_back(fake_openai, alice_token):
    fake_openai.scenario = Scenario(status=503)
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 502
    fake_openai.scenario = None
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200


async def test_midstream_failure_gives_the_slot_back(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["a", "b", "c"], fail_after=1)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            live_app + CHAT_URL,
            data=json.dumps(chat_body()),
            headers={"Authorization": f"Token {alice_token}"},
        ) as resp,
    ):
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    fake_openai.scenario = None
    assert await stream_status(live_app, alice_token) == 200


async def test_client_disconnect_gives_the_slot_back(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["x"] * 200, gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            live_app + CHAT_URL,
            data=json.dumps(chat_body()),
            headers={"Authorization": f"Token {alice_token}"},
        )
        assert resp.status == 200
        await resp.content.readany()
        assert await stream_status(live_app, alice_token) == 429  # the open stream holds the slot
        resp.close()  # the Stop button
    await fake_openai.wait_for(lambda s: s.open_streams == 0)
    fake_openai.scenario = None
    deadline = time.monotonic() + 5
    while (status := await stream_status(live_app, alice_token)) == 429 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert status == 200


async def test_a_slot_never_released_expires(alice, settings):
    settings.STREAM_SLOT_TTL = 1
    await acquire_stream_slot(user_id=alice.pk)  # a worker that died mid-stream: never released
    with pytest.raises(ApiError, match="too_many_streams"):
        await acquire_stream_slot(user_id=alice.pk)
    await asyncio.sleep(1.2)
    slot = await acquire_stream_slot(user_id=alice.pk)
    assert slot.key is not None


async def test_release_is_idempotent_and_only_frees_its_own_slot(alice, settings):
    settings.STREAM_SLOT_TTL = 1
    stale = await acquire_stream_slot(user_id=alice.pk)
    await asyncio.sleep(1.2)  # expired; another stream takes the same slot
    current = await acquire_stream_slot(user_id=alice.pk)
    assert current.key == stale.key
    await stale.release()  # must not free the new owner's slot
    await stale.release()
    with pytest.raises(ApiError, match="too_many_streams"):
        await acquire_stream_slot(user_id=alice.pk)
    await current.release()
    await (await acquire_stream_slot(user_id=alice.pk)).release()


async def test_zero_means_no_cap(alice, settings):
    settings.MAX_STREAMS_PER_USER = 0
    slots = [await acquire_stream_slot(user_id=alice.pk) for _ in range(50)]
    assert all(slot.key is None for slot in slots)


async def test_cache_down_allows_the_stream(alice, caplog):
    from django.test import override_settings

    nowhere = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_free_port()}/0",
        }
    }
    with override_settings(CACHES=nowhere):
        first = await acquire_stream_slot(user_id=alice.pk)
        second = await acquire_stream_slot(user_id=alice.pk)
    assert first.key is None and second.key is None
    assert "stream cap unavailable" in caplog.text


# --- two worker processes sharing the cap through Redis ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _redis_url() -> str | None:
    import redis

    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Redis does not answer at {url} (CI=true: not skipping)")
        pytest.skip(f"Redis does not answer at {url}")
    return url


@pytest.fixture
def two_workers(tmp_path, fake_openai):
    """uvicorn --workers 2 on a file SQLite database, the cap (1 per user) counted in Redis."""
    import redis

    redis_url = _redis_url()
    port = _free_port()
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": redis_url,
        "MAX_STREAMS_PER_USER": "1",
        "STREAM_SLOT_TTL": "6",
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
            "from tests.conftest import make_user; from profiles.tokens import token_create; "
            f"print(token_create(user=make_user('alice', api_key={ALICE_KEY!r}), name='tests')[1])",
        ],
        env=env,
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]  # after the shell's own "objects imported" line
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter("*streams:*"):
        client.delete(key)
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "chatproject.asgi:application",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
            "--no-access-log",
        ],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(server, url, workers=2)
        yield server, url, token
    finally:
        server.send_signal(signal.SIGINT)
        try:
            output, _ = server.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
        _record_output(output)
        for key in client.scan_iter("*streams:*"):
            client.delete(key)


def _record_output(output: str) -> None:
    # The suite-wide secret check reads what the subprocess logged too.
    from tests import leakcheck

    leakcheck.record("uvicorn subprocess output", output)


def _wait_until_serving(server: subprocess.Popen, url: str, *, workers: int) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "uvicorn exited early"
        try:
            urllib.request.urlopen(url + CHAT_URL, timeout=1)
        except urllib.error.HTTPError:
            if len(_connections_per_worker(server, int(url.rsplit(":", 1)[1]))) >= workers:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("uvicorn workers did not start")


def _connections_per_worker(server: subprocess.Popen, port: int) -> dict[int, int]:
    """Established connections on our port, per worker (the children holding the listening socket)."""
    import psutil

    per_worker = {}
    for child in psutil.Process(server.pid).children():
        mine = [c for c in child.net_connections("tcp") if c.laddr and c.laddr.port == port]
        if any(c.status == psutil.CONN_LISTEN for c in mine):
            per_worker[child.pid] = sum(c.status == psutil.CONN_ESTABLISHED for c in mine)
    return per_worker


@pytest.mark.slow
async def test_two_workers_share_the_cap_through_redis(two_workers, fake_openai):
    server, url, token = two_workers
    port = int(url.rsplit(":", 1)[1])
    fake_openai.scenario = Scenario(pieces=["x"] * 400, gap=0.05)  # 20 s: held until we close it
    headers = {"Authorization": f"Token {token}"}
    body = json.dumps(chat_body())

    sessions: list[aiohttp.ClientSession] = []

    async def attempt() -> tuple[int, aiohttp.ClientResponse]:
        sessions.append(session := aiohttp.ClientSession())  # a connection of its own, kept open
        resp = await session.post(url + CHAT_URL, data=body, headers=headers)
        if resp.status != 200:
            await resp.read()  # the connection goes back to its pool, still open on its worker
        return resp.status, resp

    try:
        # A burst first, then one at a time until both workers hold some of these connections (the
        # kernel picks the worker): then the count was really shared between the two processes.
        results = list(await asyncio.gather(*(attempt() for _ in range(12))))
        while not all((per_worker := _connections_per_worker(server, port)).values()) and len(results) < 200:
            results.append(await attempt())
            await asyncio.sleep(0.02)
        assert len(per_worker) == 2 and all(per_worker.values()), per_worker
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] + [429] * (len(results) - 1), statuses

        streaming = next(resp for status, resp in results if status == 200)
        streaming.close()
        deadline = time.monotonic() + 5
        while (status := (await attempt())[0]) != 200 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert status == 200  # released across processes once the stream ended
    finally:
        await asyncio.gather(*(session.close() for session in sessions))


@pytest.mark.slow
async def test_a_killed_worker_cannot_lock_its_user_out(two_workers, fake_openai):
    import psutil

    server, url, token = two_workers
    port = int(url.rsplit(":", 1)[1])
    fake_openai.scenario = Scenario(pieces=["x"] * 400, gap=0.05)
    headers = {"Authorization": f"Token {token}"}
    body = json.dumps(chat_body())
    async with aiohttp.ClientSession() as session:
        resp = await session.post(url + CHAT_URL, data=body, headers=headers)
        assert resp.status == 200
        await resp.content.readany()
        holder = next(pid for pid, count in _connections_per_worker(server, port).items() if count)
        started = time.monotonic()
        os.kill(holder, signal.SIGKILL)  # dies without running any finally
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
        await fake_openai.wait_for(lambda s: s.open_streams == 0)
        resp.release()

        async def status_now() -> int:
            async with session.post(url + CHAT_URL, data=body, headers=headers) as again:
                await again.read()
                return again.status

        assert await status_now() == 429  # the dead worker's slot is still counted...
        fake_openai.scenario = None
        while (status := await status_now()) == 429 and time.monotonic() - started < 15:
            await asyncio.sleep(0.25)
        assert status == 200  # ...until its TTL (6 s here) runs out
        assert time.monotonic() - started < 12
    assert psutil.Process(server.pid).is_running()


async def test_a_response_dropped_while_its_head_is_sent_still_gives_everything_back(
    fake_openai, alice, alice_token, settings
):
    """When the client leaves while the response head is being sent, Django drops the response
    without iterating or closing its body, so the stream's owner never hears of it: only the ASGI
    safety net (upstream.stream.closing_abandoned_streams) closes the upstream stream and its slot."""
    from chatproject import asgi
    from upstream.stream import closing_abandoned_streams

    settings.MAX_STREAMS_PER_USER = 2
    fake_openai.scenario = Scenario(pieces=["x"] * 20, gap=0.1)
    body = json.dumps(chat_body()).encode()

    async def request_dropped_at_its_head(app) -> None:
        gone = asyncio.Event()
        messages = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict:
            if messages:
                return messages.pop()
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                gone.set()  # the client leaves now...
                await asyncio.sleep(5)  # ...while the head is on its way (Django cancels this)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": CHAT_URL,
            "raw_path": CHAT_URL.encode(),
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "headers": [
                (b"host", b"127.0.0.1"),
                (b"authorization", f"Token {alice_token}".encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        await asyncio.wait_for(app(scope, receive, send), 5)

    await request_dropped_at_its_head(asgi.django_application)  # without the net...
    await asyncio.sleep(0.3)
    assert fake_openai.open_streams == 1  # ...the upstream stream is left open
    await request_dropped_at_its_head(closing_abandoned_streams(asgi.django_application))
    await asyncio.sleep(0.3)
    assert fake_openai.open_streams == 1  # only the first one: the net closed the second
    second = await acquire_stream_slot(user_id=alice.pk)  # the net gave back the second's slot...
    with pytest.raises(ApiError):
        await acquire_stream_slot(user_id=alice.pk)  # ...the leaked stream still holds the first
    await second.release()


async def test_a_client_gone_while_its_slot_is_taken_leaves_no_slot(alice):
    """With Redis the slot is taken on a worker thread, which finishes even if the request is
    cancelled meanwhile (the client left): what it took must be given back, not left to the TTL."""
    import redis
    from django.test import override_settings

    url = _redis_url()
    client = redis.Redis.from_url(url)
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": url,
                "KEY_PREFIX": "cancel-test",
            }
        }
    ):
        for _ in range(20):
            taking = asyncio.create_task(acquire_stream_slot(user_id=alice.pk))
            await asyncio.sleep(0)  # now waiting for the worker thread
            taking.cancel()
            with pytest.raises(asyncio.CancelledError):
                await taking
        await asyncio.sleep(0.5)
        assert list(client.scan_iter("cancel-test:*streams:*")) == []
