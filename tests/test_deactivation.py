"""Deactivating a user (is_active=False, the admin's "Active" box) ends their access at once: the
session they are logged in with and every API token, on the pages, the DRF API, /api/chat/openai and
/v1. Over real HTTP to the app under uvicorn, as a browser and an SDK would reach it.
"""

import http.client
import json
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from profiles.tokens import token_create
from tests.conftest import PASSWORD, make_user
from tests.helpers import chat_body

pytestmark = pytest.mark.django_db(transaction=True)

CSRF = "k" * 32  # any 32 letters: the cookie and the header only have to match


class Caller:
    """One HTTP client to the live server, with a session cookie or a token."""

    def __init__(self, base_url: str, *, session: str | None = None, token: str | None = None) -> None:
        self.address = urlsplit(base_url).netloc
        self.headers: dict[str, str] = {}
        if session:
            self.headers["Cookie"] = f"sessionid={session}; csrftoken={CSRF}"
            self.headers["X-CSRFToken"] = CSRF
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.address, timeout=10)
        try:
            headers = dict(self.headers)
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            connection.request(method, path, data, headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def everything(caller: Caller, *, with_session: bool) -> dict[str, int]:
    """The status of each kind of request the user can make."""
    statuses = {
        "DRF API": caller.call("GET", "/api/profile/")[0],
        "chat API": caller.call("POST", "/api/chat/openai", chat_body())[0],
    }
    if with_session:
        statuses["settings page"] = caller.call("GET", "/profile/settings/")[0]
        statuses["chat page"] = caller.call("GET", "/")[0]
    else:  # /v1 is for SDKs: tokens only
        statuses["/v1/models"] = caller.call("GET", "/v1/models")[0]
        statuses["/v1/chat/completions"] = caller.call(
            "POST",
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]},
        )[0]
    return statuses


@pytest.fixture
def gina(transactional_db):
    return make_user("gina", api_key="sk-gina-test-0123456789abcdefGHIJ")


def session_of(user) -> str:
    client = Client()
    assert (
        client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    )
    return client.cookies["sessionid"].value


def deactivate(user) -> None:
    user.is_active = False
    user.save(update_fields=["is_active"])


def test_deactivating_a_user_ends_their_session_at_once(live_app, gina):
    browser = Caller(live_app, session=session_of(gina))
    assert everything(browser, with_session=True) == {
        "DRF API": 200,
        "chat API": 200,
        "settings page": 200,
        "chat page": 200,
    }
    deactivate(gina)
    after = everything(browser, with_session=True)
    assert after["DRF API"] == after["chat API"] == 401
    assert after["settings page"] == after["chat page"] == 302  # to the login page
    status, headers, _ = browser.call("GET", "/profile/settings/")
    assert headers["Location"].startswith("/accounts/login/")


def test_deactivating_a_user_ends_their_tokens_at_once(live_app, gina):
    _, token = token_create(user=gina, name="sdk")
    sdk = Caller(live_app, token=token)
    assert set(everything(sdk, with_session=False).values()) == {200}
    deactivate(gina)
    assert set(everything(sdk, with_session=False).values()) == {401}
    status, _, body = sdk.call("GET", "/v1/models")
    assert json.loads(body)["error"]["code"] == "invalid_api_key"


def test_reactivating_a_user_lets_their_tokens_work_again(live_app, gina):
    """Deactivation is reversible: the tokens were refused, not deleted."""
    _, token = token_create(user=gina, name="sdk")
    deactivate(gina)
    assert Caller(live_app, token=token).call("GET", "/api/profile/")[0] == 401
    get_user_model().objects.filter(pk=gina.pk).update(is_active=True)
    assert Caller(live_app, token=token).call("GET", "/api/profile/")[0] == 200
