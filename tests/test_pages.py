"""The web pages with Django's test client: login, logout, sign-up, settings, chat; CSP; the key never
shown."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.test import AsyncClient

from conversations.services import conversation_create
from profiles.models import Profile
from tests.conftest import ALICE_KEY, ALICE_ORG, PASSWORD, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
NEW_KEY = "sk-proj-New_Key-0123456789abcdefghij"


@pytest.fixture
def erin(db):
    """A user with a key, for the sync tests (alice's fixture needs a transactional database)."""
    return make_user("erin", api_key="sk-erin-secret-0123456789abcdEFGH", organization="org-erin1")


@pytest.fixture
def erin_client(client, erin):
    client.force_login(erin)
    return client


def page_text(response) -> str:
    return response.content.decode()


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def profile_of(user) -> Profile:
    return Profile.objects.get(user=user)


# --- Login required -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/profile/settings/"])
def test_pages_redirect_anonymous_users_to_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_remove_key_needs_login_and_post(client, erin):
    assert client.post("/profile/settings/key/remove/")["Location"].startswith("/accounts/login/")
    client.force_login(erin)
    assert client.get("/profile/settings/key/remove/").status_code == 405
    assert profile_of(erin).openai_api_key  # untouched


# --- Login, logout, sign-up -----------------------------------------------------------------------


def test_login_page_logs_in_and_goes_to_the_chat(client, erin):
    page = client.get("/accounts/login/?next=/")
    assert page.status_code == 200
    assert 'name="username"' in page_text(page) and 'type="password"' in page_text(page)

    response = client.post("/accounts/login/", {"username": "erin", "password": PASSWORD, "next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_page_says_when_the_password_is_wrong(client, erin):
    response = client.post("/accounts/login/", {"username": "erin", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in page_text(response)


def test_logged_in_user_skips_the_login_page(erin_client):
    assert erin_client.get("/accounts/login/")["Location"] == "/"


def test_logout_is_a_post_and_says_so(erin_client):
    assert erin_client.get("/accounts/logout/").status_code == 405
    response = erin_client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert "You have been logged out." in messages_of(response)
    assert erin_client.get("/")["Location"].startswith("/accounts/login/")


def test_pages_have_a_logout_button_not_a_link(erin_client):
    html = page_text(erin_client.get("/"))
    assert re.search(
        r'<form method="post" action="/accounts/logout/">\s*<input type="hidden" name="csrfmiddlewaretoken"',
        html,
    )


def test_signup_creates_an_account_and_goes_to_settings(client, settings):
    settings.SIGNUP_ENABLED = True
    assert 'href="/accounts/signup/"' in page_text(client.get("/accounts/login/"))
    response = client.post(
        "/accounts/signup/",
        {
            "username": "frank",
            "email": "frank@example.com",
            "password1": "a-long-enough-password-42",
            "password2": "a-long-enough-password-42",
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/profile/settings/"
    assert "Welcome, frank! Add your OpenAI API key to start chatting." in messages_of(response)
    frank = User.objects.get(username="frank")
    assert frank.email == "frank@example.com"
    assert profile_of(frank).openai_api_key == ""
    assert response.context["user"] == frank


def test_signup_shows_what_is_wrong(client, settings):
    settings.SIGNUP_ENABLED = True
    response = client.post(
        "/accounts/signup/",
        {
            "username": "frank",
            "password1": "a-long-enough-password-42",
            "password2": "something-else-42",
        },
    )
    assert response.status_code == 200
    assert "The two password fields didn’t match." in page_text(response)
    assert not User.objects.filter(username="frank").exists()


def test_signup_can_be_switched_off(client, settings):
    settings.SIGNUP_ENABLED = False
    assert client.get("/accounts/signup/").status_code == 404
    assert client.post("/accounts/signup/", {"username": "x"}).status_code == 404
    assert "/accounts/signup/" not in page_text(client.get("/accounts/login/"))


# --- Chat page ------------------------------------------------------------------------------------


def test_chat_page_offers_the_configured_models(erin_client, settings):
    settings.CHAT_MODELS = ["gpt-4o-mini", "o3-mini", "my-local-model"]
    html = page_text(erin_client.get("/"))
    options = re.findall(r'<option value="([^"]+)" data-accepts-temperature="(true|false)">', html)
    assert options == [("gpt-4o-mini", "true"), ("o3-mini", "false"), ("my-local-model", "true")]


def test_chat_page_carries_what_its_script_needs(erin_client):
    response = erin_client.get("/")
    html = page_text(response)
    assert 'data-conversations-url="/api/conversations/"' in html
    assert 'data-conversation-id=""' in html  # "/": a new chat
    assert 'data-settings-url="/profile/settings/"' in html
    token = re.search(r'data-csrf-token="([^"]+)"', html).group(1)
    assert len(token) >= 32
    assert response.cookies["csrftoken"].value  # the header token pairs with this cookie
    assert '<script type="module" src="/static/js/chat.js"></script>' in html


def test_a_conversation_has_its_own_address(erin_client, erin):
    conversation = conversation_create(owner=erin, title="Tides <and> the moon")
    response = erin_client.get(f"/c/{conversation.id}/")
    assert response.status_code == 200
    html = page_text(response)
    assert f'data-conversation-id="{conversation.id}"' in html
    assert '<h1 class="visually-hidden" data-title>Tides &lt;and&gt; the moon</h1>' in html
    assert "<title>Tides &lt;and&gt; the moon · BYOK Chat</title>" in html
    assert '<a href="/" aria-current="page">Chat</a>' in html


def test_another_users_conversation_is_the_404_page(client, erin):
    conversation = conversation_create(owner=erin, title="Private")
    client.force_login(make_user("bob"))
    response = client.get(f"/c/{conversation.id}/")
    assert response.status_code == 404
    assert "Private" not in page_text(response)
    assert "Page not found" in page_text(response)
    assert client.get("/c/00000000-0000-4000-8000-000000000000/").status_code == 404
    client.logout()
    assert client.get(f"/c/{conversation.id}/")["Location"].startswith("/accounts/login/")


def test_chat_page_points_users_without_a_key_to_settings(client, erin):
    bob = make_user("bob")
    client.force_login(bob)
    assert "data-missing-key" in page_text(client.get("/"))
    client.force_login(erin)
    assert "data-missing-key" not in page_text(client.get("/"))


# --- Settings page --------------------------------------------------------------------------------


def test_settings_page_shows_hint_and_date_never_the_key(erin_client, erin):
    html = page_text(erin_client.get("/profile/settings/"))
    key = profile_of(erin).openai_api_key
    assert "<code>sk-...EFGH</code>" in html
    assert "Last changed" in html and "just now" in html
    assert key not in html and key[3:-4] not in html
    key_input = re.search(r'<input type="password" name="api_key"[^>]*>', html).group(0)
    assert "value=" not in key_input
    assert 'value="org-erin1"' in html  # the organization is not a secret: pre-filled
    assert "Remove key" in html


def test_settings_page_for_a_user_without_a_key(client):
    client.force_login(make_user("bob"))
    html = page_text(client.get("/profile/settings/"))
    assert "None yet." in html and "Never" in html
    assert "New API key" in html
    assert "Remove key" not in html


def test_saving_a_key_stores_it_and_says_so(erin_client, erin):
    response = erin_client.post(
        "/profile/settings/", {"api_key": f"  {NEW_KEY}\n", "organization_id": "org-erin1"}, follow=True
    )
    assert response.redirect_chain == [("/profile/settings/", 302)]
    assert messages_of(response) == ["Your OpenAI API key was replaced (sk-...ghij)."]
    assert profile_of(erin).openai_api_key == NEW_KEY
    assert NEW_KEY not in page_text(response)


def test_first_key_is_saved_not_replaced(client):
    bob = make_user("bob")
    client.force_login(bob)
    response = client.post("/profile/settings/", {"api_key": NEW_KEY}, follow=True)
    assert messages_of(response) == ["Your OpenAI API key was saved (sk-...ghij)."]
    profile = profile_of(bob)
    assert profile.openai_api_key == NEW_KEY and profile.openai_api_key_updated_at is not None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("my password", "An API key has no spaces or line breaks inside."),
        ("sk-abc def0123456789abcdef", "An API key has no spaces or line breaks inside."),
        (
            "pk-0123456789abcdef0123456789",
            "This does not look like an OpenAI API key: keys start with “sk-”.",
        ),
        ("0123456789abcdef0123456789", "This does not look like an OpenAI API key: keys start with “sk-”."),
        ("sk-0123", "This key is too short to be an OpenAI API key."),
        ("sk-0123456789abcdef0123456789!", "An API key contains only letters, digits, “-” and “_”."),
        ("sk-" + "a" * 600, "Ensure this value has at most 500 characters"),
    ],
)
def test_an_obvious_non_key_is_refused_with_a_clear_message(erin_client, erin, value, message):
    before = profile_of(erin).openai_api_key
    response = erin_client.post("/profile/settings/", {"api_key": value, "organization_id": "org-erin1"})
    assert response.status_code == 200
    assert message in page_text(response)
    assert 'aria-invalid="true"' in page_text(response)
    assert value not in page_text(response)  # the rejected text is not echoed back either
    assert profile_of(erin).openai_api_key == before


def test_organization_is_saved_checked_and_removed(erin_client, erin):
    response = erin_client.post("/profile/settings/", {"organization_id": "org-New_Team42"}, follow=True)
    assert messages_of(response) == ["Organization ID saved."]
    assert profile_of(erin).openai_organization_id == "org-New_Team42"

    response = erin_client.post("/profile/settings/", {"organization_id": "my team"})
    assert "An organization ID looks like “org-…”." in page_text(response)
    assert profile_of(erin).openai_organization_id == "org-New_Team42"

    response = erin_client.post("/profile/settings/", {"organization_id": ""}, follow=True)
    assert messages_of(response) == ["Organization ID removed."]
    assert profile_of(erin).openai_organization_id == ""
    assert profile_of(erin).openai_api_key  # the key stays when only the organization changes


def test_saving_nothing_says_nothing_changed(erin_client):
    response = erin_client.post("/profile/settings/", {"organization_id": "org-erin1"}, follow=True)
    assert messages_of(response) == ["Nothing to save: enter a new key or change the organization ID."]


def test_removing_the_key(erin_client, erin):
    html = page_text(erin_client.get("/profile/settings/"))
    assert 'action="/profile/settings/key/remove/" data-confirm=' in html
    response = erin_client.post("/profile/settings/key/remove/", follow=True)
    assert messages_of(response) == ["Your OpenAI API key was removed."]
    profile = profile_of(erin)
    assert profile.openai_api_key == "" and profile.openai_organization_id == "org-erin1"
    assert "None yet." in page_text(response)

    response = erin_client.post("/profile/settings/key/remove/", follow=True)
    assert messages_of(response) == ["There was no key to remove."]


def test_check_without_any_key_asks_for_one(client):
    client.force_login(make_user("bob"))
    response = client.post("/profile/settings/", {"check_key": "on"})
    assert "Enter a key to check." in page_text(response)


# --- The optional key check (one upstream call; async client, so it runs as under uvicorn) --------


async def post_settings(alice, data: dict) -> tuple[object, str]:
    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post("/profile/settings/", data, follow=True)
    return response, response.content.decode()


async def stored_key(user) -> str:
    return (await Profile.objects.aget(user=user)).openai_api_key


async def test_checked_key_is_saved_when_openai_accepts_it(alice, fake_openai):
    response, html = await post_settings(
        alice, {"api_key": NEW_KEY, "organization_id": ALICE_ORG, "check_key": "on"}
    )
    assert "Your OpenAI API key was replaced (sk-...ghij) and OpenAI accepted it." in html
    assert await stored_key(alice) == NEW_KEY
    request = fake_openai.last_request
    assert (request.method, request.path) == ("GET", "/v1/models")
    assert request.headers["authorization"] == f"Bearer {NEW_KEY}"
    assert request.headers["openai-organization"] == ALICE_ORG


async def test_checked_key_is_not_saved_when_openai_rejects_it(alice, fake_openai):
    bad_key = "sk-bad-0123456789abcdefghijkl"
    response, html = await post_settings(alice, {"api_key": bad_key, "check_key": "on"})
    assert "OpenAI did not accept this key: it is incorrect or has been revoked. Nothing was saved." in html
    assert (
        bad_key not in html and bad_key[-4:] not in html
    )  # OpenAI's own message quotes the key: not relayed
    assert await stored_key(alice) == ALICE_KEY


async def test_organization_refused_by_openai_is_explained(alice, fake_openai):
    response, html = await post_settings(alice, {"api_key": "sk-noorg-0123456789abcdefgh", "check_key": "on"})
    assert "OpenAI refused this key for this organization." in html
    assert await stored_key(alice) == ALICE_KEY


async def test_the_stored_key_can_be_checked_without_retyping_it(alice, fake_openai):
    response, html = await post_settings(alice, {"organization_id": ALICE_ORG, "check_key": "on"})
    assert "OpenAI accepted your key (sk-...WXYZ)." in html
    assert "Nothing to save" not in html
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"


async def test_unreachable_upstream_saves_nothing_and_says_how_to_skip_the_check(alice, settings):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: connection refused
    settings.OPENAI_MAX_RETRIES = 0
    response, html = await post_settings(alice, {"api_key": NEW_KEY, "check_key": "on"})
    assert "Could not reach OpenAI" in html and "Nothing was saved." in html
    assert "To save the key without checking it, untick “Check the key”." in html
    assert await stored_key(alice) == ALICE_KEY


# --- Security headers and markup ------------------------------------------------------------------


def rendered_pages(client, erin) -> dict[str, str]:
    pages = {"login": page_text(client.get("/accounts/login/"))}
    client.force_login(erin)
    pages["chat"] = page_text(client.get("/"))
    pages["settings"] = page_text(client.get("/profile/settings/"))
    pages["settings (errors)"] = page_text(
        client.post("/profile/settings/", {"api_key": "nope", "check_key": "on"})
    )
    return pages


@pytest.mark.parametrize("path", ["/accounts/login/", "/", "/profile/settings/"])
def test_csp_forbids_inline_script(erin_client, path):
    policy = erin_client.get(path, follow=True)["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in policy


def test_pages_have_no_inline_script_style_or_handlers(client, erin):
    for name, html in rendered_pages(client, erin).items():
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name
        assert not re.search(r"\son[a-z]+\s*=", html), name
        assert not re.search(r"<style|\sstyle=", html), name


def test_key_is_in_no_page(client, erin):
    key = profile_of(erin).openai_api_key
    for name, html in rendered_pages(client, erin).items():
        assert key not in html and key[3:-4] not in html, name
