"""The official `openai` Python SDK, unchanged, as the client of the running app (uvicorn).

`openai.OpenAI(base_url=<app>/v1, api_key=<our API token>)`: what a user of this server writes.
Retries are off (max_retries=0) so each error is seen as the server sent it.
"""

import asyncio

import openai
import pytest
from asgiref.sync import sync_to_async

from profiles.exceptions import KEY_MISSING
from profiles.models import ApiToken
from profiles.tokens import token_create, token_digest
from tests.conftest import ALICE_KEY, make_user
from tests.fake_openai import MODEL_IDS, Scenario

pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def sdk(live_app: str, token: str, **options) -> openai.AsyncOpenAI:
    options.setdefault("max_retries", 0)
    return openai.AsyncOpenAI(base_url=live_app + "/v1", api_key=token, **options)


async def token_for(username: str, key: str | None = None) -> str:
    user = await sync_to_async(make_user)(username, api_key=key)
    return (await sync_to_async(token_create)(user=user, name="tests"))[1]


async def test_sync_client_streams_and_lists_models(live_app, fake_openai, alice_token):
    """The plain synchronous client, exactly as the README shows it (in a worker thread)."""

    def use_sdk() -> tuple[str, list[str]]:
        with openai.OpenAI(base_url=live_app + "/v1", api_key=alice_token) as client:
            stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
            return text, [model.id for model in client.models.list()]

    text, models = await asyncio.to_thread(use_sdk)
    assert text == "tok0 tok1 tok2 tok3 tok4 "
    assert models == list(MODEL_IDS)


async def test_non_streaming_completion(live_app, fake_openai, alice_token):
    async with sdk(live_app, alice_token) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "tok0 tok1 tok2 tok3 tok4 "
    assert completion.usage.completion_tokens == 5
    assert completion._request_id.startswith("req_")  # the upstream's request id comes through
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"


async def test_streaming_with_usage(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["Hel", "lo ", "世界"], gap=0.01)
    async with sdk(live_app, alice_token) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello 世界"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 3


async def test_models_list(live_app, fake_openai, alice_token):
    async with sdk(live_app, alice_token) as client:
        models = [model.id async for model in client.models.list()]
    assert models == list(MODEL_IDS)


async def test_token_header_form_works_through_the_sdk(live_app, fake_openai, alice_token):
    async with sdk(live_app, "unused", default_headers={"Authorization": f"Token {alice_token}"}) as client:
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content


async def test_model_rules_apply_to_sdk_requests(live_app, fake_openai, alice_token):
    async with sdk(live_app, alice_token) as client:
        await client.chat.completions.create(model="gpt-5", messages=MESSAGES, max_tokens=50, temperature=0.2)
    sent = fake_openai.last_request.json
    assert sent["max_completion_tokens"] == 50 and "temperature" not in sent and "max_tokens" not in sent


async def test_sdk_options_cannot_redirect_the_upstream_call(live_app, fake_openai, alice_token):
    async with sdk(live_app, alice_token, organization="org-evil", project="proj-evil") as client:
        await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            extra_body={
                "api_key": "sk-attacker-000000000000",
                "base_url": "http://evil.example/v1",
                "organization": "org-evil",
            },
        )
    sent = fake_openai.last_request
    assert sent.headers["authorization"] == f"Bearer {ALICE_KEY}"
    assert sent.headers["openai-organization"] == "org-alice123"
    assert "openai-project" not in sent.headers
    assert not {"api_key", "base_url", "organization"} & set(sent.json)


# --- errors as the SDK raises them ------------------------------------------------------------


async def test_wrong_or_revoked_token_is_an_authentication_error(live_app, fake_openai, alice, alice_token):
    # (No token at all: the SDK refuses to send a request without an api_key; see test_openai_compat.py.)
    async with sdk(live_app, "not-a-token") as client:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"
    await ApiToken.objects.filter(digest=token_digest(alice_token)).adelete()
    async with sdk(live_app, alice_token) as client:
        with pytest.raises(openai.AuthenticationError):
            await client.models.list()
    assert fake_openai.requests == []


async def test_missing_key_is_a_bad_request_with_the_settings_link(live_app, fake_openai, bob_token):
    async with sdk(live_app, bob_token) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    error = caught.value
    assert error.code == "openai_api_key_missing"
    assert error.body["message"] == KEY_MISSING.message
    assert error.body["settings_url"] == live_app + "/profile/settings/"


@pytest.mark.parametrize(
    ("key", "exception", "code"),
    [
        ("sk-bad-key-that-openai-rejects-9876", openai.BadRequestError, "openai_api_key_invalid"),
        ("sk-noorg-key-1234567890", openai.BadRequestError, "openai_permission_denied"),
        ("sk-quota-key-1234567890", openai.RateLimitError, "openai_quota_exceeded"),
        ("sk-ratelimit-key-12345678", openai.RateLimitError, "openai_rate_limited"),
    ],
)
async def test_key_and_account_errors(live_app, fake_openai, transactional_db, key, exception, code):
    token = await token_for("erin", key)
    async with sdk(live_app, token) as client:
        with pytest.raises(exception) as caught:
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert caught.value.code == code
    assert key not in str(caught.value.body) and "9876" not in caught.value.message
    if code == "openai_rate_limited":
        assert caught.value.response.headers["retry-after"] == "7"


async def test_quota_error_is_not_retried_by_the_sdk(live_app, fake_openai, transactional_db):
    token = await token_for("frank", "sk-quota-key-1234567890")
    async with sdk(live_app, token, max_retries=2) as client:  # the SDK's default
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(fake_openai.requests) == 1  # x-should-retry: false


@pytest.mark.parametrize(
    ("model", "scenario", "exception", "code"),
    [
        ("no-such-model", None, openai.BadRequestError, "openai_model_not_found"),
        ("too-long", None, openai.BadRequestError, "openai_bad_request"),
        ("gpt-4o-mini", Scenario(status=503), openai.InternalServerError, "openai_error"),
        ("gpt-4o-mini", Scenario(first_delay=2.0), openai.InternalServerError, "openai_timeout"),
    ],
)
async def test_upstream_errors(
    live_app, fake_openai, alice_token, settings, model, scenario, exception, code
):
    settings.OPENAI_TIMEOUT = 0.5
    settings.OPENAI_MAX_RETRIES = 0
    fake_openai.scenario = scenario
    async with sdk(live_app, alice_token) as client:
        with pytest.raises(exception) as caught:
            await client.chat.completions.create(model=model, messages=MESSAGES, stream=True)
    assert caught.value.code == code


async def test_unreachable_upstream(live_app, fake_openai, alice_token, settings):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    sock.close()
    settings.OPENAI_MAX_RETRIES = 0
    async with sdk(live_app, alice_token) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await client.models.list()
    assert (caught.value.status_code, caught.value.code) == (502, "openai_unreachable")


async def test_midstream_failure_raises_in_the_sdk_after_the_first_chunks(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=["one ", "two ", "three "], fail_after=2, gap=0.05)
    received: list[str] = []
    async with sdk(live_app, alice_token) as client:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError) as caught:
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
    assert "".join(received) == "one two "
    assert caught.value.code == "openai_interrupted"
    assert "broke off" in caught.value.message


async def test_leaving_a_stream_early_cancels_the_upstream(live_app, fake_openai, alice_token):
    fake_openai.scenario = Scenario(pieces=[f"p{i} " for i in range(100)], gap=0.05)
    async with sdk(live_app, alice_token) as client:
        stream = await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        async for _ in stream:
            break
        await stream.close()
    await fake_openai.wait_for(lambda s: s.streams_cancelled >= 1, timeout=5)
    assert fake_openai.streams_completed == 0
