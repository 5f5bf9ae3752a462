"""The fake OpenAI upstream, checked with the real OpenAI SDK over real loopback HTTP.

No Django here: run with ``pytest -p no:django tests/test_fake_openai.py`` if pytest-django
is not configured.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from tests.fake_openai import MODEL_IDS, FakeOpenAI, Scenario

MESSAGES: list[dict[str, Any]] = [{"role": "user", "content": "Say hello"}]
REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh(server: FakeOpenAI) -> None:
    server.reset()


@pytest.fixture
async def client(server: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    # max_retries=0: these tests look at single upstream answers (429/5xx would be retried).
    async with openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key="sk-test",
        http_client=openai.DefaultAioHttpClient(),
        max_retries=0,
    ) as sdk:
        yield sdk


async def raw_post(
    server: FakeOpenAI, body: dict[str, Any], headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """POST without the SDK, to look at the exact bytes on the wire."""
    all_headers = {"Authorization": "Bearer sk-test", **(headers or {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/chat/completions", json=body, headers=all_headers) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


def sse_data(raw: bytes) -> list[str]:
    events = raw.decode().split("\n\n")
    assert events[-1] == ""  # every event is terminated by a blank line
    return [e.removeprefix("data: ") for e in events[:-1]]


# --------------------------------------------------------------------------- happy paths


async def test_stream_parses_with_the_sdk(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert content == "tok0 tok1 tok2 tok3 tok4 "
    assert [c.choices[0].finish_reason for c in chunks] == [None] * 6 + ["stop"]
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" and c.model == "gpt-4o" for c in chunks)
    assert chunks[0].system_fingerprint == "fp_fake"
    assert all(c.usage is None for c in chunks)
    assert (server.streams_started, server.streams_completed, server.streams_cancelled) == (1, 1, 0)
    assert server.open_streams == 0


async def test_include_usage_adds_a_final_usage_chunk(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and last.usage.completion_tokens == 5
    assert last.usage.total_tokens == last.usage.prompt_tokens + 5 and last.usage.prompt_tokens > 0
    assert chunks[-2].choices[0].finish_reason == "stop"


async def test_stream_wire_format(server: FakeOpenAI) -> None:
    status, headers, raw = await raw_post(
        server,
        {
            "model": "gpt-4o",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream; charset=utf-8"
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert chunks[1]["choices"][0] == {
        "index": 0,
        "delta": {"content": "tok0 "},
        "logprobs": None,
        "finish_reason": None,
    }
    # With include_usage, every chunk before the usage chunk carries an explicit null.
    assert all("usage" in c and c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 5


async def test_without_include_usage_chunks_have_no_usage_key(server: FakeOpenAI) -> None:
    _, _, raw = await raw_post(server, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    chunks = [json.loads(d) for d in sse_data(raw)[:-1]]
    assert all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_non_streaming_completion(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=["Hello", ", ", "world"])
    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "Hello, world"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 3
    assert server.streams_started == 0


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = [m async for m in client.models.list()]
    assert [m.id for m in models] == list(MODEL_IDS)
    assert all(m.object == "model" and m.owned_by == "openai" for m in models)
    assert (await client.models.retrieve("gpt-5")).id == "gpt-5"


async def test_requests_are_recorded_and_reset(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, temperature=0.5, extra_headers={"X-Custom": "1"}
    )
    sent = server.last_request
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.headers["x-custom"] == "1"
    assert sent.json == {"model": "gpt-4o", "messages": MESSAGES, "temperature": 0.5}
    assert json.loads(sent.body) == sent.json

    server.reset()
    assert server.requests == [] and server.scenario is None


# --------------------------------------------------------------------------- errors


async def test_missing_key_is_401(server: FakeOpenAI) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{server.base_url}/models") as resp:
        assert resp.status == 401
        error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and "didn't provide an API key" in error["message"]


async def test_bad_key_has_openais_body(server: FakeOpenAI) -> None:
    key = "sk-bad-0123456789-WXYZ"
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=key, http_client=openai.DefaultAioHttpClient(), max_retries=0
    ) as sdk:
        with pytest.raises(openai.AuthenticationError) as info:
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    assert info.value.status_code == 401
    assert info.value.body == {
        "message": "Incorrect API key provided: sk-bad************WXYZ. You can find your API key "
        "at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }


@pytest.mark.parametrize(
    ("key", "exc_type", "code", "type_"),
    [
        ("sk-noorg-1234", openai.PermissionDeniedError, "mismatched_organization", "invalid_request_error"),
        ("sk-quota-1234", openai.RateLimitError, "insufficient_quota", "insufficient_quota"),
        ("sk-ratelimit-1234", openai.RateLimitError, "rate_limit_exceeded", "requests"),
    ],
)
async def test_account_errors(
    server: FakeOpenAI, key: str, exc_type: type[openai.APIStatusError], code: str, type_: str
) -> None:
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=key, http_client=openai.DefaultAioHttpClient(), max_retries=0
    ) as sdk:
        with pytest.raises(exc_type) as info:
            await sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)

    assert (info.value.code, info.value.type) == (code, type_)
    if code == "rate_limit_exceeded":
        assert info.value.response.headers["retry-after"] == "7"
    assert server.streams_started == 0  # errors come before any streaming


@pytest.mark.parametrize(
    ("model", "exc_type", "code"),
    [
        ("no-such-model", openai.NotFoundError, "model_not_found"),
        ("too-long", openai.BadRequestError, "context_length_exceeded"),
        ("server-error", openai.InternalServerError, None),
    ],
)
async def test_magic_models(
    client: openai.AsyncOpenAI, model: str, exc_type: type[openai.APIStatusError], code: str | None
) -> None:
    with pytest.raises(exc_type) as info:
        await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert info.value.code == code
    if model == "no-such-model":
        assert info.value.message.endswith(
            "The model `no-such-model` does not exist or you do not have access to it."
        )
    if model == "server-error":
        assert info.value.type == "server_error"


async def test_unknown_path_is_404(server: FakeOpenAI) -> None:
    auth = {"Authorization": "Bearer sk-test"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{server.base_url}/nope", headers=auth) as resp,
    ):
        assert resp.status == 404
        assert (await resp.json())["error"]["message"] == "Invalid URL (POST /v1/nope)"


async def test_scenario_error_with_headers(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(
        status=503, error={"message": "overloaded", "type": "server_error"}, headers={"X-Why": "busy"}
    )
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert info.value.status_code == 503
    assert info.value.body == {"message": "overloaded", "type": "server_error"}
    assert info.value.response.headers["x-why"] == "busy"


async def test_fail_times_then_success(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(status=500, fail_times=2, pieces=["ok"])
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    completion = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert completion.choices[0].message.content == "ok"
    assert len(server.requests) == 3


# --------------------------------------------------------------------------- failure modes


async def test_fail_after_aborts_mid_stream(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=["a", "b", "c", "d"], fail_after=2)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIError):  # the SDK wraps the transport error
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "ab"
    assert (server.streams_aborted, server.streams_completed) == (1, 0)
    await server.wait_for(lambda s: s.open_streams == 0, timeout=2)


async def test_split_bytes_still_decodes(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    pieces = ["日本語", "😀", " mixed ü"]
    server.scenario = Scenario(pieces=pieces, split_bytes=True)
    stream = await client.chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "".join(pieces)
    assert chunks[-1].usage is not None


async def test_split_bytes_really_splits_characters(server: FakeOpenAI) -> None:
    """Reads raw socket data: at least one read must end inside a UTF-8 character.

    HTTP/1.0 so the body is not chunk-framed and the reads can be joined back together.
    """
    server.scenario = Scenario(pieces=["日本語"], split_bytes=True)
    body = json.dumps({"model": "gpt-4o", "messages": MESSAGES, "stream": True}).encode()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(
        b"POST /v1/chat/completions HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    reads: list[bytes] = []
    while data := await reader.read(65536):
        reads.append(data)
    writer.close()

    def decodes(data: bytes) -> bool:
        try:
            data.decode()
        except UnicodeDecodeError:
            return False
        return True

    assert not all(decodes(r) for r in reads)
    assert "日本語" in b"".join(reads).decode()


async def test_malformed_line_and_missing_done(server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=["a", "b"], malformed_after=1, end_without_done=True)
    status, _, raw = await raw_post(server, {"model": "gpt-4o", "messages": MESSAGES, "stream": True})
    data = sse_data(raw)
    assert status == 200
    assert data[2] == "{not json"  # role chunk, "a", then the broken line
    assert json.loads(data[3])["choices"][0]["delta"]["content"] == "b"
    assert "[DONE]" not in data
    assert server.streams_completed == 1


async def test_stall_then_client_leaves_counts_cancelled(server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=["a", "b"], stall_after=1)
    timeout = aiohttp.ClientTimeout(sock_read=0.3)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(
            f"{server.base_url}/chat/completions",
            json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
            headers={"Authorization": "Bearer sk-test"},
        ) as resp,
    ):
        await server.wait_for(lambda s: s.open_streams == 1)
        with pytest.raises(asyncio.TimeoutError):
            await resp.read()
    await server.wait_for(lambda s: s.streams_cancelled == 1 and s.open_streams == 0, timeout=2)
    assert server.streams_completed == 0


async def test_client_closing_early_counts_cancelled(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=[f"p{i}" for i in range(100)], gap=0.02)
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    seen = 0
    async for _ in stream:
        seen += 1
        if seen == 3:
            break
    await stream.close()
    await server.wait_for(lambda s: s.streams_cancelled == 1 and s.open_streams == 0, timeout=2)
    assert server.streams_completed == 0


async def test_first_delay_and_gap(client: openai.AsyncOpenAI, server: FakeOpenAI) -> None:
    server.scenario = Scenario(pieces=["a", "b", "c"], first_delay=0.2, gap=0.05)
    start = time.monotonic()
    stream = await client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    headers_at = time.monotonic() - start
    arrivals = [time.monotonic() async for c in stream if c.choices and c.choices[0].delta.content]
    assert headers_at >= 0.19
    assert arrivals[-1] - arrivals[0] >= 0.09  # two gaps: pieces arrive incrementally


async def test_header_overrides(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=MESSAGES,
        stream=True,
        extra_headers={"X-Fake-Chunks": "12", "X-Fake-Gap-Ms": "1"},
    )
    content = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert content == "".join(f"tok{i} " for i in range(12))


# --------------------------------------------------------------------------- CLI


def test_cli_serves_and_prints_its_address() -> None:
    proc = subprocess.Popen(
        [sys.executable, "tests/fake_openai.py", "--port", "0", "--chunks", "3"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("fake-openai listening on http://127.0.0.1:") and line.endswith("/v1")
        base_url = line.removeprefix("fake-openai listening on ")
        with openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0) as sdk:
            completion = sdk.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert completion.choices[0].message.content == "tok0 tok1 tok2 "
    finally:
        proc.terminate()
        assert proc.wait(timeout=5) == 0
