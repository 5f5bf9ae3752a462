"""The team key: staff set it, users without a key of their own use it if allowed, own keys win;
which key is in use, in the API and on the pages; the chat page's models come from the key in use.

alice has a key of her own, bob has none.
"""

import re

import pytest
from asgiref.sync import sync_to_async
from cryptography.fernet import Fernet
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import connection
from django.db.models import TextField, Value
from django.test import AsyncClient

from profiles.models import Profile, TeamKey
from profiles.services import (
    profile_api_credentials,
    profile_for,
    profile_set_openai_key,
    team_key_get,
    team_key_set_openai_key,
)
from tests.browser import log_in
from tests.conftest import ALICE_KEY, PASSWORD
from tests.fake_openai import MODEL_IDS
from tests.helpers import chat_body, json_of, post_chat
from upstream.credentials import OpenAICredentials

TEAM_KEY = "sk-team-shared-0123456789abcdefTEAM"
TEAM_ORG = "org-team42"
ADMIN_URL = "/admin/profiles/teamkey/"


def set_team_key(*, everyone: bool = False, groups: tuple[Group, ...] = (), base_url: str = "") -> TeamKey:
    team_key = team_key_get()
    team_key.openai_organization_id = TEAM_ORG
    team_key.available_to_everyone = everyone
    team_key.openai_base_url = base_url
    team_key.save()
    team_key.groups.set(groups)
    return team_key_set_openai_key(team_key=team_key, api_key=TEAM_KEY)


aset_team_key = sync_to_async(set_team_key)


def stored_ciphertext() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT openai_api_key FROM profiles_teamkey")
        return cursor.fetchone()[0]


# --- who gets the team key ----------------------------------------------------------------------------


async def test_a_user_without_a_key_chats_with_the_team_key_when_everyone_may(bob, bob_token, fake_openai):
    await aset_team_key(everyone=True)
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 200, content
    assert content.decode() == "tok0 tok1 tok2 tok3 tok4 "
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"
    assert fake_openai.last_request.headers["openai-organization"] == TEAM_ORG


async def test_the_team_key_is_only_for_the_members_of_its_groups(bob, bob_token, fake_openai):
    chatters = await Group.objects.acreate(name="chatters")
    await aset_team_key(groups=(chatters,))

    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 400
    assert json_of(content)["code"] == "openai_api_key_missing"
    assert fake_openai.requests == []

    await sync_to_async(bob.groups.add)(chatters)
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 200, content
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"


async def test_a_users_own_key_always_wins(alice, alice_token, fake_openai):
    await aset_team_key(everyone=True)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200, content
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"


async def test_without_a_stored_team_key_nobody_gets_one(bob, bob_token, fake_openai):
    team_key = await sync_to_async(team_key_get)()
    team_key.available_to_everyone = True
    await team_key.asave()
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert json_of(content)["code"] == "openai_api_key_missing"


async def test_v1_uses_the_team_key_too(bob, bob_token, fake_openai):
    await aset_team_key(everyone=True)
    headers = {"Authorization": f"Bearer {bob_token}"}
    response = await AsyncClient().get("/v1/models", headers=headers)
    assert response.status_code == 200
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"
    response = await AsyncClient().post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
        headers=headers,
    )
    assert response.status_code == 200
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"


async def test_the_team_key_never_goes_to_a_users_own_base_url(bob, bob_token, fake_openai, settings):
    settings.USER_BASE_URL_ENABLED = True
    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    await Profile.objects.filter(user=bob).aupdate(openai_base_url="http://127.0.0.1:9/v1")  # nothing there
    await aset_team_key(everyone=True)
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 200, content  # to the server's default, the fake
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"


async def test_the_team_keys_base_url_is_used_and_guarded(bob, bob_token, fake_openai, settings):
    settings.OPENAI_BASE_URL = "https://api.openai.invalid/v1"
    await aset_team_key(everyone=True, base_url=fake_openai.base_url)

    settings.UPSTREAM_ALLOWED_HOSTS = []  # allowlisted when staff saved it; no more
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 400
    body = json_of(content)
    assert body["code"] == "openai_base_url_refused"
    assert "ask them to fix it" in body["message"]  # not the user's to fix
    assert fake_openai.requests == []

    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    response, content = await post_chat(AsyncClient(), chat_body(), token=bob_token)
    assert response.status_code == 200, content
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"


def test_an_unreadable_team_key_says_whose_it_is(bob):
    set_team_key(everyone=True)
    lost = Fernet(Fernet.generate_key()).encrypt(b"sk-lost-team-key-000000000").decode()
    TeamKey.objects.update(openai_api_key=Value(lost, output_field=TextField()))
    with pytest.raises(Exception) as error:
        profile_api_credentials(profile=profile_for(user=bob))
    assert error.value.code == "team_key_unreadable"


def test_users_with_their_own_key_pay_no_query_and_the_others_one(alice, bob, django_assert_num_queries):
    chatters = Group.objects.create(name="chatters")
    set_team_key(groups=(chatters,))
    bob.groups.add(chatters)
    alice_profile, bob_profile = profile_for(user=alice), profile_for(user=bob)
    with django_assert_num_queries(0):
        assert profile_api_credentials(profile=alice_profile).source == "own"
    with django_assert_num_queries(1):  # the team key and the group membership together
        credentials = profile_api_credentials(profile=bob_profile)
    assert credentials == OpenAICredentials(api_key=TEAM_KEY, organization=TEAM_ORG, source="team")


# --- which key is in use: the API and the settings page ------------------------------------------------


def test_the_api_says_which_key_is_in_use(client, alice, bob):
    client.force_login(alice)
    assert client.get("/api/profile/").json()["key_source"] == "own"
    client.force_login(bob)
    assert client.get("/api/profile/").json()["key_source"] == "none"
    set_team_key(everyone=True)
    body = client.get("/api/profile/").json()
    assert body["key_source"] == "team"
    assert body["openai_api_key_set"] is False and body["openai_api_key_hint"] is None  # bob's own
    assert TEAM_KEY not in str(body) and TEAM_ORG not in str(body)


def test_the_settings_page_says_which_key_is_in_use(client, alice, bob):
    client.force_login(bob)
    html = client.get("/profile/settings/").content.decode()
    assert 'data-key-in-use="none"' in html
    set_team_key(everyone=True)
    html = client.get("/profile/settings/").content.decode()
    assert 'data-key-in-use="team"' in html and "The team's key" in html
    assert TEAM_KEY not in html and TEAM_KEY[-4:] not in html
    client.force_login(alice)
    assert 'data-key-in-use="own"' in client.get("/profile/settings/").content.decode()


# --- the admin ------------------------------------------------------------------------------------------


def test_staff_set_the_team_key_in_the_admin_and_it_is_never_shown(admin_client, bob):
    chatters = Group.objects.create(name="chatters")
    add_page = admin_client.get(f"{ADMIN_URL}add/").content.decode()
    assert 'name="new_openai_api_key"' in add_page and 'type="password"' in add_page
    assert 'id="id_groups"' in add_page  # the groups picker

    response = admin_client.post(
        f"{ADMIN_URL}add/",
        {
            "new_openai_api_key": TEAM_KEY,
            "openai_organization_id": TEAM_ORG,
            "openai_base_url": "",
            "groups": [chatters.pk],
        },
    )
    assert response.status_code == 302, response.content.decode()
    team_key = TeamKey.objects.get()
    assert team_key.openai_api_key == TEAM_KEY and list(team_key.groups.all()) == [chatters]
    assert TEAM_KEY not in stored_ciphertext() and stored_ciphertext().startswith("gAAAAA")

    for page in (ADMIN_URL, f"{ADMIN_URL}{team_key.pk}/change/"):
        html = admin_client.get(page).content.decode()
        assert TEAM_KEY not in html and stored_ciphertext() not in html
        assert "sk-...TEAM" in html  # the hint
    assert admin_client.get(f"{ADMIN_URL}add/").status_code == 403  # one team key only

    admin_client.post(f"{ADMIN_URL}{team_key.pk}/change/", {"clear_openai_api_key": "on", "groups": []})
    assert TeamKey.objects.get().openai_api_key == ""


def test_the_admin_action_clears_the_team_key(admin_client):
    team_key = set_team_key(everyone=True)
    admin_client.post(ADMIN_URL, {"action": "clear_team_key", "_selected_action": [team_key.pk]})
    assert TeamKey.objects.get().openai_api_key == ""


# --- the chat page's model picker ------------------------------------------------------------------------


@pytest.fixture
def picker(settings):
    settings.CHAT_MODELS_FROM_UPSTREAM = True
    cache.clear()
    yield
    cache.clear()


def offered_models(client) -> list[tuple[str, str]]:
    html = client.get("/").content.decode()
    return re.findall(r'<option value="([^"]+)" data-accepts-temperature="(true|false)">', html)


def model_list_requests(fake_openai) -> int:
    return sum(1 for request in fake_openai.requests if request.path == "/v1/models")


def test_the_picker_lists_the_models_the_users_key_reaches(client, alice, fake_openai, picker, settings):
    client.force_login(alice)
    offered = offered_models(client)
    # CHAT_MODELS' order first (its first is preselected), then the rest; the model rules still apply.
    assert offered == [("gpt-4o-mini", "true"), ("gpt-4o", "true"), ("gpt-5", "false"), ("o3-mini", "false")]
    assert {model for model, _ in offered} == set(MODEL_IDS)
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"

    offered_models(client)
    assert model_list_requests(fake_openai) == 1  # cached per user


def test_the_picker_lists_the_models_the_team_key_reaches(client, bob, fake_openai, picker):
    set_team_key(everyone=True)
    client.force_login(bob)
    assert {model for model, _ in offered_models(client)} == set(MODEL_IDS)
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"


def test_the_picker_falls_back_to_chat_models_when_the_upstream_fails(
    client, alice, fake_openai, picker, settings
):
    settings.CHAT_MODELS = ["gpt-4o-mini", "my-local-model"]
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there
    settings.OPENAI_MAX_RETRIES = 0
    client.force_login(alice)
    assert offered_models(client) == [("gpt-4o-mini", "true"), ("my-local-model", "true")]


def test_the_picker_falls_back_when_the_key_is_refused(client, bob, fake_openai, picker, settings):
    profile_set_openai_key(profile=profile_for(user=bob), api_key="sk-bad-key-0123456789abcdefXYZ")
    client.force_login(bob)
    assert [model for model, _ in offered_models(client)] == settings.CHAT_MODELS
    assert model_list_requests(fake_openai) == 1


def test_a_user_without_any_key_is_offered_chat_models_without_an_upstream_call(
    client, bob, fake_openai, picker, settings
):
    client.force_login(bob)
    assert [model for model, _ in offered_models(client)] == settings.CHAT_MODELS
    assert fake_openai.requests == []


@pytest.fixture
def team_key_for_everyone(transactional_db) -> TeamKey:
    return set_team_key(everyone=True)


@pytest.mark.browser
def test_the_chat_page_serves_a_keyless_user_with_the_team_key(
    bob, team_key_for_everyone, picker, fake_openai, browser_page
):
    """No 'add a key' notice for a user the team key serves, and the picker lists what it reaches.
    (The database is set up before the browser starts: Playwright runs an event loop here.)"""
    page = browser_page
    log_in(page, "bob", PASSWORD)
    assert page.locator("[data-missing-key]").count() == 0
    assert sorted(page.locator("[data-model] option").all_inner_texts()) == sorted(MODEL_IDS)
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {TEAM_KEY}"
