"""Request shape and authentication of POST /api/chat/openai."""

import pytest
from django.middleware.csrf import _get_new_csrf_string
from django.test import AsyncClient

from tests.helpers import CHAT_URL, chat_body, json_of, post_chat

pytestmark = pytest.mark.django_db(transaction=True)


async def test_accepts_chatbot_ui_body_without_content_type(fake_openai, alice_token):
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "no-cache"
    assert response["X-Accel-Buffering"] == "no"
    assert content == b"tok0 tok1 tok2 tok3 tok4 "


async def test_upstream_receives_user_credentials_and_params(fake_openai, alice_token):
    body = chat_body(model="gpt-4o-mini", temperature=0.25)
    await post_chat(AsyncClient(), body, token=alice_token)
    sent = fake_openai.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-alice-test-0123456789abcdefWXYZ"
    assert sent.headers["openai-organization"] == "org-alice123"
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["messages"] == body["messages"]
    assert sent.json["temperature"] == 0.25
    assert sent.json["stream"] is True
    assert "max_tokens" not in sent.json  # never null: absent
    # chatSettings' other fields are the browser's business, not OpenAI's
    assert not {"prompt", "contextLength", "embeddingsProvider"} & set(sent.json)


async def test_gpt4o_gets_4096_max_tokens(fake_openai, alice_token):
    await post_chat(AsyncClient(), chat_body(model="gpt-4o"), token=alice_token)
    assert fake_openai.last_request.json["max_tokens"] == 4096


@pytest.mark.parametrize("model", ["o1", "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini"])
async def test_reasoning_models_get_completion_tokens_and_no_temperature(fake_openai, alice_token, model):
    await post_chat(AsyncClient(), chat_body(model=model, temperature=1.2), token=alice_token)
    sent = fake_openai.last_request.json
    assert "temperature" not in sent and "max_tokens" not in sent
    assert sent["max_completion_tokens"] == 25_000


async def test_image_content_parts_are_forwarded(fake_openai, alice_token):
    body = chat_body(model="gpt-4o")
    body["messages"][1]["content"] = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
    ]
    response, _ = await post_chat(AsyncClient(), body, token=alice_token)
    assert response.status_code == 200
    assert fake_openai.last_request.json["messages"][1]["content"] == body["messages"][1]["content"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, "chatSettings"),
        (
            {"chatSettings": {"model": 5}, "messages": [{"role": "user", "content": "hi"}]},
            "chatSettings.model",
        ),
        (
            {
                "chatSettings": {"model": "gpt-4o", "temperature": 2.5},
                "messages": [{"role": "user", "content": "x"}],
            },
            "chatSettings.temperature",
        ),
        (
            {
                "chatSettings": {"model": "gpt-4o", "temperature": "hot"},
                "messages": [{"role": "user", "content": "x"}],
            },
            "chatSettings.temperature",
        ),
        ({"chatSettings": {"model": "gpt-4o"}, "messages": []}, "messages"),
        (
            {"chatSettings": {"model": "gpt-4o"}, "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        ({"chatSettings": {"model": "gpt-4o"}, "messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {"chatSettings": {"model": "gpt-4o"}, "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
        (
            {
                "chatSettings": {"model": "gpt-4o"},
                "messages": [{"role": "user", "content": [{"type": "video"}]}],
            },
            "messages[0].content[0]",
        ),
    ],
)
async def test_invalid_bodies_name_the_field(fake_openai, alice_token, body, field):
    response, content = await post_chat(AsyncClient(), body, token=alice_token)
    error = json_of(content)
    assert response.status_code == 400
    assert error["code"] == "invalid_request"
    assert field in error["fields"]
    assert error["settings_url"] == "http://testserver/profile/settings/"
    assert fake_openai.requests == []


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[1, 2]", b'{"chatSettings": ', '"héllo"'.encode("latin-1")]
)
async def test_non_json_or_non_object_is_400(fake_openai, alice_token, raw):
    response, content = await post_chat(AsyncClient(), None, raw=raw, token=alice_token)
    assert response.status_code == 400
    assert json_of(content)["code"] in {"invalid_json", "invalid_request"}


async def test_wrong_method_is_405():
    response = await AsyncClient().get(CHAT_URL)
    assert response.status_code == 405


async def test_no_credentials_is_401_json(fake_openai):
    response, content = await post_chat(AsyncClient(), chat_body())
    assert response.status_code == 401
    assert json_of(content)["code"] == "not_authenticated"
    assert fake_openai.requests == []


async def test_unknown_or_revoked_token_is_401(fake_openai, alice, alice_token):
    from profiles.models import ApiToken
    from profiles.tokens import token_digest

    response, content = await post_chat(AsyncClient(), chat_body(), token="0" * 40)
    assert (response.status_code, json_of(content)["code"]) == (401, "invalid_token")
    await ApiToken.objects.filter(digest=token_digest(alice_token)).adelete()
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 401


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
async def test_token_in_both_header_forms(fake_openai, alice_token, scheme):
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token, scheme=scheme)
    assert response.status_code == 200 and content


async def test_session_requires_csrf(fake_openai, alice):
    client = AsyncClient(enforce_csrf_checks=True)
    await client.aforce_login(alice)
    response, content = await post_chat(client, chat_body())
    assert (response.status_code, json_of(content)["code"]) == (403, "csrf_failed")
    assert fake_openai.requests == []

    secret = _get_new_csrf_string()
    client.cookies["csrftoken"] = secret
    response, content = await post_chat(client, chat_body(), **{"X-CSRFToken": secret})
    assert response.status_code == 200
    assert content == b"tok0 tok1 tok2 tok3 tok4 "


async def test_oversized_body_is_413(fake_openai, alice_token, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    body = chat_body()
    body["messages"][1]["content"] = "x" * 5000
    response, content = await post_chat(AsyncClient(), body, token=alice_token)
    assert (response.status_code, json_of(content)["code"]) == (413, "request_too_large")


@pytest.mark.parametrize("model", ["my-local-llama", "gpt-4o\n", "o1\nx", ""])
def test_models_no_rule_names_get_the_default_rule(model):
    from chat.model_rules import apply_model_rules

    params = apply_model_rules({"model": model, "messages": [], "temperature": 0.3})
    assert params == {"model": model, "messages": [], "temperature": 0.3}


@pytest.mark.parametrize(
    ("path", "shape"),
    [("/api/chat/openai", "ours"), ("/api/profile/", "ours"), ("/v1/chat/completions", "openai")],
)
def test_a_refused_host_header_is_a_json_400(path, shape):
    from django.test import Client

    response = Client().post(path, b"{}", content_type="application/json", HTTP_HOST="evil.example")
    assert response.status_code == 400
    body = json_of(response.content)
    error = body["error"] if shape == "openai" else body
    assert error["code"] == "bad_request"
    assert "Host header" in error["message"]
    assert error["settings_url"] == "/profile/settings/"


async def test_unknown_api_path_is_a_json_404_and_pages_stay_html():
    response = await AsyncClient().get("/api/no-such-thing/")
    assert response.status_code == 404
    assert json_of(response.content)["code"] == "not_found"
    page = await AsyncClient().get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
