"""Every error before streaming: one JSON shape, the right status, a link to the settings page."""

import pytest
from django.test import AsyncClient

from profiles.models import Profile
from profiles.tokens import token_create
from tests.conftest import make_user
from tests.fake_openai import Scenario
from tests.helpers import chat_body, json_of, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

SETTINGS_URL = "http://testserver/profile/settings/"


async def error_of(token: str, body=None, **kwargs):
    response, content = await post_chat(AsyncClient(), body or chat_body(), token=token, **kwargs)
    assert response["Content-Type"] == "application/json"
    return response, json_of(content)


def user_with_key(username: str, key: str) -> str:
    return token_create(user=make_user(username, api_key=key), name="tests")[1]


async def test_missing_key_links_to_settings(fake_openai, bob_token):
    response, body = await error_of(bob_token)
    assert response.status_code == 400
    assert list(body) == ["message", "code", "settings_url"]  # message first, as in the original
    assert body["message"].startswith("OpenAI API Key not found. Please set it in your profile settings.")
    assert body["code"] == "openai_api_key_missing"
    assert body["settings_url"] == SETTINGS_URL
    assert fake_openai.requests == []  # nothing was sent upstream


async def test_incorrect_key_never_quotes_the_key(fake_openai, transactional_db):
    key = "sk-bad-key-that-openai-rejects-9876"
    token = await _sync(user_with_key, "carol", key)
    response, body = await error_of(token)
    assert response.status_code == 400  # not 401: the caller's own token is fine
    assert body["code"] == "openai_api_key_invalid"
    assert body["message"].startswith("OpenAI API Key is incorrect. Please fix it in your profile settings.")
    assert body["settings_url"] == SETTINGS_URL
    text = str(body)
    assert key not in text and "9876" not in text and "sk-bad" not in text


async def test_unreadable_key_asks_to_reenter(fake_openai, alice, alice_token, settings):
    from cryptography.fernet import Fernet

    settings.PROFILE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]  # the old key is lost
    response, body = await error_of(alice_token)
    assert response.status_code == 400
    assert body["code"] == "openai_api_key_unreadable"
    assert "re-enter it in your profile settings" in body["message"]
    assert body["settings_url"] == SETTINGS_URL


@pytest.mark.parametrize(
    ("key", "status", "code", "needle"),
    [
        ("sk-noorg-key-123456", 400, "openai_permission_denied", "organization ID"),
        ("sk-quota-key-123456", 429, "openai_quota_exceeded", "billing"),
        ("sk-ratelimit-key-1234", 429, "openai_rate_limited", "Try again in 7 seconds"),
    ],
)
async def test_upstream_account_errors(fake_openai, transactional_db, key, status, code, needle):
    token = await _sync(user_with_key, "dave", key)
    response, body = await error_of(token)
    assert (response.status_code, body["code"]) == (status, code)
    assert needle in body["message"]
    assert body["settings_url"] == SETTINGS_URL
    if code == "openai_rate_limited":
        assert response["Retry-After"] == "7"
    # 429s are passed on, never retried (a quota error would fail again and again)
    assert len(fake_openai.requests) == 1


async def test_model_not_found(fake_openai, alice_token):
    response, body = await error_of(alice_token, chat_body(model="no-such-model"))
    assert (response.status_code, body["code"]) == (400, "openai_model_not_found")
    assert "no-such-model" in body["message"]


async def test_upstream_bad_request_passes_message(fake_openai, alice_token):
    fake_openai.scenario = Scenario(
        status=400,
        error={
            "message": "This model's maximum context length is 8192 tokens. Key sk-abcdefgh1234 was used.",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "context_length_exceeded",
        },
    )
    response, body = await error_of(alice_token)
    assert (response.status_code, body["code"]) == (400, "openai_bad_request")
    assert body["message"].startswith("This model's maximum context length is 8192 tokens.")
    assert "sk-abcdefgh1234" not in body["message"]


async def test_upstream_unreachable(fake_openai, alice_token, settings):
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    response, body = await error_of(alice_token)
    assert (response.status_code, body["code"]) == (502, "openai_unreachable")


async def test_upstream_timeout(fake_openai, alice_token, settings):
    settings.OPENAI_TIMEOUT = 0.3
    fake_openai.scenario = Scenario(first_delay=2.0)
    response, body = await error_of(alice_token)
    assert (response.status_code, body["code"]) == (504, "openai_timeout")


async def test_other_upstream_error_after_bounded_retries(fake_openai, alice_token, settings):
    settings.OPENAI_MAX_RETRIES = 2
    fake_openai.scenario = Scenario(status=503, error={"message": "overloaded", "type": "server_error"})
    response, body = await error_of(alice_token)
    assert (response.status_code, body["code"]) == (502, "openai_error")
    assert len(fake_openai.requests) == 3  # one try and two retries, then give up


async def test_5xx_before_streaming_is_retried_then_streams(fake_openai, alice_token):
    fake_openai.scenario = Scenario(
        status=500,
        error={"message": "oops", "type": "server_error"},
        fail_times=1,
        pieces=["Hello", " again"],
    )
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200
    assert content == b"Hello again"
    assert len(fake_openai.requests) == 2


async def _sync(fn, *args):
    from asgiref.sync import sync_to_async

    return await sync_to_async(fn)(*args)


async def test_user_without_profile_row_gets_one(bob, bob_token):
    await Profile.objects.filter(user=bob).adelete()
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert json_of(content)["code"] == "openai_api_key_missing"
    assert await Profile.objects.filter(user=bob).aexists()
