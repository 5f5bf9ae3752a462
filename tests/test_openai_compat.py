"""/v1/chat/completions and /v1/models over HTTP: Django's AsyncClient, and raw HTTP to the live server.

The official SDK's view of the same endpoints is in test_openai_sdk.py.
"""

import json
import socket

import aiohttp
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from profiles.exceptions import KEY_MISSING
from profiles.models import ApiToken
from profiles.tokens import token_create, token_digest
from tests.conftest import ALICE_KEY, ALICE_ORG, make_user
from tests.fake_openai import MODEL_IDS, Scenario
from tests.helpers import chat_body, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

COMPLETIONS = "/v1/chat/completions"
MODELS = "/v1/models"
SETTINGS_URL = "http://testserver/profile/settings/"
OPENAI_ERROR_KEYS = {"message", "type", "param", "code", "settings_url"}


def completion_body(**extra):
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello"}], **extra}


async def post(body, *, token: str | None, scheme: str = "Bearer", raw: bytes | None = None, **headers):
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    response = await AsyncClient().generic(
        "POST", COMPLETIONS, data, content_type="application/json", headers=headers
    )
    if response.streaming:
        return response, b"".join([part async for part in response.streaming_content])
    return response, response.content


async def openai_error(response, content: bytes, status: int, code: str) -> dict:
    assert response.status_code == status, content
    assert response["Content-Type"] == "application/json"
    body = json.loads(content)
    assert set(body) == {"error"} and set(body["error"]) == OPENAI_ERROR_KEYS
    assert body["error"]["code"] == code
    assert body["error"]["settings_url"] == SETTINGS_URL
    return body["error"]


def sse_events(content: bytes) -> list[bytes]:
    assert content.endswith(b"\n\n")
    events = content[:-2].split(b"\n\n")
    assert all(event.startswith(b"data: ") for event in events), events
    return [event[6:] for event in events]


async def token_for(username: str, key: str | None = None) -> str:
    user = await sync_to_async(make_user)(username, api_key=key)
    return (await sync_to_async(token_create)(user=user, name="tests"))[1]


# --- success ----------------------------------------------------------------------------------


async def test_non_streaming_answer_is_the_upstream_json_as_sent(fake_openai, alice_token):
    response, content = await post(completion_body(), token=alice_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["x-request-id"].startswith("req_")  # the upstream's id, for OpenAI support
    body = orjson.loads(content)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "tok0 tok1 tok2 tok3 tok4 "
    # not parsed and re-serialised on the way: the fake's compact encoding is kept
    assert content == orjson.dumps(body)


async def test_streaming_relays_the_upstream_events(fake_openai, alice_token):
    response, content = await post(completion_body(stream=True), token=alice_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    events = sse_events(content)
    assert events[-1] == b"[DONE]"
    chunks = [orjson.loads(event) for event in events[:-1]]
    assert all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all(event == orjson.dumps(orjson.loads(event)) for event in events[:-1])  # bytes as sent


async def test_include_usage_is_forwarded(fake_openai, alice_token):
    body = completion_body(stream=True, stream_options={"include_usage": True})
    _, content = await post(body, token=alice_token)
    usage_chunk = orjson.loads(sse_events(content)[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == 5
    assert fake_openai.last_request.json["stream_options"] == {"include_usage": True}


async def test_request_goes_upstream_with_the_callers_key_and_organization(fake_openai, alice_token):
    body = completion_body(
        user="end-user-7",
        seed=3,
        logprobs=False,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    )
    await post(body, token=alice_token, **{"OpenAI-Organization": "org-evil", "OpenAI-Project": "proj-evil"})
    sent = fake_openai.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {ALICE_KEY}"
    assert sent.headers["openai-organization"] == ALICE_ORG
    assert "openai-project" not in sent.headers
    # everything else is forwarded as sent
    for name in ("user", "seed", "logprobs", "tools", "messages", "model"):
        assert sent.json[name] == body[name]


async def test_body_cannot_override_credentials_base_url_or_organization(fake_openai, alice_token):
    body = completion_body(
        api_key="sk-attacker-0000000000000000",
        organization="org-evil",
        project="proj-evil",
        base_url="http://evil.example/v1",
        api_base="http://evil.example/v1",
        extra_headers={"Authorization": "Bearer sk-attacker"},
        extra_query={"x": "1"},
        headers={"OpenAI-Organization": "org-evil"},
    )
    response, _ = await post(body, token=alice_token)
    assert response.status_code == 200
    sent = fake_openai.last_request
    assert sent.headers["authorization"] == f"Bearer {ALICE_KEY}"
    assert sent.headers["openai-organization"] == ALICE_ORG
    assert sent.query == {}
    assert set(sent.json) == {"model", "messages"}  # the overrides went nowhere, not even upstream


async def test_model_rules_apply(fake_openai, alice_token):
    await post(completion_body(model="o3-mini", max_tokens=100, temperature=0.3), token=alice_token)
    sent = fake_openai.last_request.json
    assert sent["max_completion_tokens"] == 100
    assert "max_tokens" not in sent and "temperature" not in sent
    await post(completion_body(model="gpt-4o"), token=alice_token)
    assert fake_openai.last_request.json["max_tokens"] == 4096


async def test_models_list_is_the_upstreams(fake_openai, alice_token):
    response = await AsyncClient().get(MODELS, headers={"Authorization": f"Bearer {alice_token}"})
    assert response.status_code == 200
    assert [model["id"] for model in response.json()["data"]] == list(MODEL_IDS)
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"


@pytest.mark.parametrize("scheme", ["Bearer", "Token"])
async def test_token_in_both_header_forms(fake_openai, alice_token, scheme):
    response, _ = await post(completion_body(), token=alice_token, scheme=scheme)
    assert response.status_code == 200


# --- our own errors ---------------------------------------------------------------------------


async def test_no_token_is_openais_invalid_api_key(fake_openai, transactional_db):
    response, content = await post(completion_body(), token=None)
    error = await openai_error(response, content, 401, "invalid_api_key")
    assert error["type"] == "invalid_request_error"
    assert "Bearer" in error["message"]
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert fake_openai.requests == []


async def test_unknown_or_revoked_token_is_401(fake_openai, alice, alice_token):
    response, content = await post(completion_body(), token="no-such-token")
    await openai_error(response, content, 401, "invalid_api_key")
    await ApiToken.objects.filter(digest=token_digest(alice_token)).adelete()
    response, content = await post(completion_body(), token=alice_token)
    error = await openai_error(response, content, 401, "invalid_api_key")
    assert error["message"] == "Invalid or revoked API token."
    models = await AsyncClient().get(MODELS, headers={"Authorization": f"Bearer {alice_token}"})
    await openai_error(models, models.content, 401, "invalid_api_key")


@pytest.mark.parametrize(
    ("raw", "status", "code", "param"),
    [
        (b"{not json", 400, "invalid_json", None),
        (b"[1, 2]", 400, "invalid_request", None),
        (json.dumps({"messages": []}).encode(), 400, "invalid_request", "model"),
        (json.dumps({"model": "gpt-4o"}).encode(), 400, "invalid_request", "messages"),
        (json.dumps({"model": 5, "messages": []}).encode(), 400, "invalid_request", "model"),
    ],
)
async def test_invalid_bodies(fake_openai, alice_token, raw, status, code, param):
    response, content = await post(None, token=alice_token, raw=raw)
    error = await openai_error(response, content, status, code)
    assert (error["type"], error["param"]) == ("invalid_request_error", param)
    assert fake_openai.requests == []


async def test_wrong_method_and_unknown_endpoint(fake_openai, alice_token):
    auth = {"Authorization": f"Bearer {alice_token}"}
    response = await AsyncClient().get(COMPLETIONS, headers=auth)
    await openai_error(response, response.content, 405, "method_not_allowed")
    assert response["Allow"] == "POST"
    response = await AsyncClient().post(MODELS, headers=auth)
    await openai_error(response, response.content, 405, "method_not_allowed")
    response = await AsyncClient().post("/v1/embeddings", headers=auth, content_type="application/json")
    error = await openai_error(response, response.content, 404, "unknown_url")
    assert "POST /v1/embeddings" in error["message"]


# --- the core issue's error table, in OpenAI's shape --------------------------------------------


async def test_missing_key_has_the_core_message_and_settings_link(fake_openai, bob_token):
    response, content = await post(completion_body(), token=bob_token)
    error = await openai_error(response, content, 400, "openai_api_key_missing")
    _, core = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert error["message"] == json.loads(core)["message"] == KEY_MISSING.message
    assert error["type"] == "invalid_request_error"
    models = await AsyncClient().get(MODELS, headers={"Authorization": f"Bearer {bob_token}"})
    await openai_error(models, models.content, 400, "openai_api_key_missing")
    assert fake_openai.requests == []


async def test_invalid_key_never_quotes_it(fake_openai, transactional_db):
    key = "sk-bad-key-that-openai-rejects-9876"
    token = await token_for("carol", key)
    response, content = await post(completion_body(stream=True), token=token)
    error = await openai_error(response, content, 400, "openai_api_key_invalid")
    _, core = await post_chat(AsyncClient(), chat_body(), token=token)
    assert error["message"] == json.loads(core)["message"]
    assert "9876" not in content.decode() and "sk-bad" not in content.decode()


async def test_unreadable_key(fake_openai, alice, alice_token, settings):
    from cryptography.fernet import Fernet

    settings.PROFILE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    response, content = await post(completion_body(), token=alice_token)
    error = await openai_error(response, content, 400, "openai_api_key_unreadable")
    assert "re-enter it in your profile settings" in error["message"]


@pytest.mark.parametrize(
    ("key", "status", "code", "type_"),
    [
        ("sk-noorg-key-1234567890", 400, "openai_permission_denied", "invalid_request_error"),
        ("sk-quota-key-1234567890", 429, "openai_quota_exceeded", "insufficient_quota"),
        ("sk-ratelimit-key-12345678", 429, "openai_rate_limited", "rate_limit_error"),
    ],
)
async def test_upstream_account_errors(fake_openai, transactional_db, key, status, code, type_):
    token = await token_for("dave", key)
    response, content = await post(completion_body(stream=True), token=token)
    error = await openai_error(response, content, status, code)
    assert error["type"] == type_
    if code == "openai_rate_limited":
        assert response["Retry-After"] == "7"
        assert "Try again in 7 seconds" in error["message"]
    if code == "openai_quota_exceeded":
        assert response["x-should-retry"] == "false"  # the SDKs would retry it in vain otherwise
    assert len(fake_openai.requests) == 1


async def test_model_not_found(fake_openai, alice_token):
    response, content = await post(completion_body(model="no-such-model"), token=alice_token)
    error = await openai_error(response, content, 400, "openai_model_not_found")
    assert "no-such-model" in error["message"]


async def test_upstream_bad_request_message_redacted(fake_openai, alice_token):
    fake_openai.scenario = Scenario(
        status=400,
        error={
            "message": "Invalid value for 'n'. Key sk-abcdefgh1234 was used.",
            "type": "invalid_request_error",
            "param": "n",
            "code": "invalid_value",
        },
    )
    response, content = await post(completion_body(n=-1), token=alice_token)
    error = await openai_error(response, content, 400, "openai_bad_request")
    assert error["message"].startswith("Invalid value for 'n'.")
    assert "sk-abcdefgh1234" not in error["message"]


async def test_upstream_unreachable(fake_openai, alice_token, settings):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    response, content = await post(completion_body(), token=alice_token)
    error = await openai_error(response, content, 502, "openai_unreachable")
    assert error["type"] == "server_error"


async def test_upstream_timeout(fake_openai, alice_token, settings):
    settings.OPENAI_TIMEOUT = 0.3
    fake_openai.scenario = Scenario(first_delay=2.0)
    response, content = await post(completion_body(stream=True), token=alice_token)
    await openai_error(response, content, 504, "openai_timeout")


async def test_other_upstream_error_after_bounded_retries(fake_openai, alice_token):
    fake_openai.scenario = Scenario(status=503, error={"message": "overloaded", "type": "server_error"})
    response, content = await post(completion_body(), token=alice_token)
    await openai_error(response, content, 502, "openai_error")
    assert len(fake_openai.requests) == 3


# --- streams over real HTTP (uvicorn) ----------------------------------------------------------


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def test_stream_arrives_incrementally(live_app, fake_openai, alice_token):
    import time

    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(6)], gap=0.2)
    arrivals: list[float] = []
    async with aiohttp.ClientSession() as session:
        start = time.monotonic()
        async with session.post(
            live_app + COMPLETIONS, data=json.dumps(completion_body(stream=True)), headers=auth(alice_token)
        ) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/event-stream"
            async for _ in resp.content.iter_any():
                arrivals.append(time.monotonic() - start)
    assert arrivals[0] < 0.5 and arrivals[-1] >= 1.0
    assert len(arrivals) >= 5


async def test_client_disconnect_cancels_the_upstream(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(100)], gap=0.05)
    async with aiohttp.ClientSession() as session:
        resp = await session.post(
            live_app + COMPLETIONS, data=json.dumps(completion_body(stream=True)), headers=auth(alice_token)
        )
        assert resp.status == 200
        await resp.content.readany()
        resp.close()
    await fake_openai.wait_for(lambda s: s.streams_cancelled >= 1, timeout=5)
    assert (fake_openai.streams_cancelled, fake_openai.streams_completed) == (1, 0)
    await fake_openai.wait_for(lambda s: s.open_streams == 0, timeout=5)


async def stream_over_http(live_app: str, token: str) -> bytes:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            live_app + COMPLETIONS, data=json.dumps(completion_body(stream=True)), headers=auth(token)
        ) as resp,
    ):
        assert resp.status == 200
        return await resp.read()  # a clean end: no ClientPayloadError


@pytest.mark.parametrize(
    ("scenario", "code"),
    [
        (Scenario(pieces=["one ", "two ", "three "], fail_after=2, gap=0.05), "openai_interrupted"),
        (Scenario(pieces=["one ", "two "], end_without_done=True), "openai_interrupted"),
        (Scenario(pieces=["one ", "two ", "three "], stall_after=2), "openai_timeout"),
    ],
)
async def test_midstream_failure_ends_with_an_error_event(
    live_app, fake_openai, alice_token, settings, scenario, code
):
    settings.OPENAI_TIMEOUT = 0.5
    fake_openai.scenario = scenario
    events = sse_events(await stream_over_http(live_app, alice_token))
    contents = [orjson.loads(e)["choices"][0]["delta"].get("content") for e in events[:-1]]
    assert contents[1:3] == ["one ", "two "]  # what came is kept
    error = orjson.loads(events[-1])["error"]
    assert set(error) == OPENAI_ERROR_KEYS
    assert (error["code"], error["type"]) == (code, "server_error")
    assert error["settings_url"] == live_app + "/profile/settings/"
    assert b"[DONE]" not in b"".join(events)
    await fake_openai.wait_for(lambda s: s.open_streams == 0, timeout=5)


async def test_split_multibyte_text_passes_through_intact(live_app, fake_openai, alice_token):
    pieces = ["日本語", "の", "😀", "é"]
    fake_openai.scenario = Scenario(pieces=pieces, split_bytes=True)
    events = sse_events(await stream_over_http(live_app, alice_token))
    text = "".join(orjson.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1])
    assert text == "".join(pieces)


# --- the per-user cap on open upstream requests (chat/limits.py) ------------------------------


async def test_past_the_per_user_cap_is_a_429_in_openai_shape(fake_openai, alice, alice_token, settings):
    from django.core.cache import cache

    from upstream.limits import acquire_stream_slot

    settings.MAX_STREAMS_PER_USER = 1
    cache.clear()
    held = await acquire_stream_slot(user_id=alice.pk)  # alice has one answer streaming elsewhere
    for stream in (True, False):
        response, content = await post(completion_body(stream=stream), token=alice_token)
        error = await openai_error(response, content, 429, "too_many_streams")
        assert error["type"] == "rate_limit_error"
    assert fake_openai.requests == []
    await held.release()
    for stream in (True, False, True):  # each call gives its slot back, errors included
        response, _ = await post(completion_body(stream=stream), token=alice_token)
        assert response.status_code == 200
    response, _ = await post(completion_body(model="no-such-model"), token=alice_token)
    assert response.status_code == 400
    response, _ = await post(completion_body(stream=True), token=alice_token)
    assert response.status_code == 200
