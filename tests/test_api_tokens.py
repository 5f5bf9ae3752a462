"""API tokens, hashed: issued once, stored as a digest, named, expiring, revocable, and carried over from
DRF's clear-text tokens by the migration. The REST endpoints, the settings page, the admin and the
management command; the browser test at the end drives the settings page in Chromium.

alice has a key and an organization, bob has none (conftest.py).
"""

import importlib
import io
import json
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.migrations.recorder import MigrationRecorder
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from profiles.models import ApiToken
from profiles.tokens import (
    EXPIRED_MESSAGE,
    LAST_USED_RESOLUTION,
    TokenRefused,
    token_authenticate,
    token_create,
    token_digest,
    token_revoke,
    tokens_revoke_all,
)
from tests.conftest import ALICE_KEY, PASSWORD
from tests.helpers import chat_body, json_of, post_chat

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN_URL = "/api/token/"
TOKENS_URL = "/api/tokens/"
PROFILE_URL = "/api/profile/"
SETTINGS_PAGE = "/profile/settings/"
CREATE_PAGE = "/profile/settings/tokens/"
LISTED_FIELDS = {"id", "name", "prefix", "created_at", "last_used_at", "expires_at"}
CREATED_FIELDS = {"token", "id", "name", "prefix", "created_at", "expires_at"}


def client_with(token: str, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    return client


def works(token: str) -> bool:
    """Whether a DRF endpoint accepts the token (401 invalid_token otherwise)."""
    response = client_with(token).get(PROFILE_URL)
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def past(**delta: float) -> datetime:
    return timezone.now() - timedelta(**delta)


# --- the token and what is stored --------------------------------------------------------------


def test_a_token_is_random_text_stored_only_as_its_digest(alice):
    token, text = token_create(user=alice, name="laptop")
    assert text.startswith("bk-") and len(text) == 43
    assert token.prefix == text[:10] and token.name == "laptop"
    assert token.digest == token_digest(text) and len(token.digest) == 64 and text not in token.digest
    stored = ApiToken.objects.values().get(pk=token.pk)
    assert text not in json.dumps(stored, default=str)
    assert token_create(user=alice, name="laptop")[1] != text  # a new one every time


def test_a_dump_of_the_database_holds_no_usable_token(alice, bob, alice_token, bob_token):
    issued = [alice_token, bob_token, token_create(user=alice, name="ci", expires_at=past(days=-30))[1]]
    assert all(works(text) for text in issued)
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    dump = out.getvalue()
    for text in issued:
        assert text not in dump
    rows = [row for row in json.loads(dump) if row["model"] == "profiles.apitoken"]
    assert len(rows) == 3
    for row in rows:
        # What the dump has (the digest, the prefix) does not work as a token.
        assert not works(row["fields"]["digest"])
        assert not works(row["fields"]["prefix"])
        assert set(row["fields"]) >= {"digest", "prefix", "name", "user"}


def test_a_user_has_several_named_tokens_each_revocable(alice, bob):
    laptop = token_create(user=alice, name="laptop")
    ci = token_create(user=alice, name="CI")
    bobs = token_create(user=bob, name="laptop")
    assert sorted(alice.api_tokens.values_list("name", flat=True)) == ["CI", "laptop"]
    assert all(works(text) for _, text in (laptop, ci, bobs))
    assert token_revoke(user=alice, token_id=laptop[0].pk) is True
    assert not works(laptop[1]) and works(ci[1])
    assert token_revoke(user=alice, token_id=bobs[0].pk) is False  # not hers: untouched
    assert works(bobs[1])
    assert tokens_revoke_all(user=alice) == 1
    assert not works(ci[1]) and works(bobs[1])


def test_last_used_is_recorded_at_most_once_a_minute(alice, alice_token):
    token = ApiToken.objects.get(user=alice)
    assert token.last_used_at is None
    with CaptureQueriesContext(connection) as first:
        token_authenticate(token=alice_token)
    assert len(first) == 2  # the lookup, and the write of last_used_at
    token.refresh_from_db()
    assert timezone.now() - token.last_used_at < timedelta(seconds=5)
    recorded = token.last_used_at
    with CaptureQueriesContext(connection) as again:
        for _ in range(3):
            token_authenticate(token=alice_token)
    assert len(again) == 3  # one lookup each, no write
    token.refresh_from_db()
    assert token.last_used_at == recorded
    # Once the recorded time is older than the resolution, the next request writes it again.
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=past(seconds=LAST_USED_RESOLUTION.seconds + 1))
    with CaptureQueriesContext(connection) as later:
        token_authenticate(token=alice_token)
    assert len(later) == 2
    token.refresh_from_db()
    assert token.last_used_at > recorded


async def test_last_used_is_recorded_by_the_async_views(fake_openai, alice, alice_token):
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token, scheme="Bearer")
    assert response.status_code == 200
    token = await ApiToken.objects.aget(user=alice)
    assert token.last_used_at is not None and timezone.now() - token.last_used_at < timedelta(seconds=5)


def test_drf_requests_write_last_used_once_a_minute(alice, alice_token):
    client = client_with(alice_token)
    with CaptureQueriesContext(connection) as first:
        assert client.get(PROFILE_URL).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert client.get(PROFILE_URL).status_code == 200
    writes = [q["sql"] for q in first if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]
    assert len(writes) == 1
    assert not [q for q in second if q["sql"].startswith("UPDATE") and "apitoken" in q["sql"]]


# --- expiry -----------------------------------------------------------------------------------


@pytest.fixture
def expired_token(alice) -> str:
    return token_create(user=alice, name="old", expires_at=past(seconds=1))[1]


def test_an_expired_token_is_refused_by_the_lookup(expired_token):
    with pytest.raises(TokenRefused) as refused:
        token_authenticate(token=expired_token)
    assert refused.value.message == EXPIRED_MESSAGE
    assert "expired" in refused.value.message.lower()


def test_an_expired_token_is_401_on_the_rest_api(expired_token):
    response = client_with(expired_token).get(PROFILE_URL)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "invalid_token" and "xpired" in body["message"]
    assert response["WWW-Authenticate"].startswith("Token")
    assert client_with(expired_token).get(TOKENS_URL).status_code == 401  # cannot mint a fresh one


async def test_an_expired_token_is_401_on_the_chat_api(fake_openai, expired_token):
    response, content = await post_chat(AsyncClient(), chat_body(), token=expired_token)
    assert response.status_code == 401
    assert json_of(content)["code"] == "invalid_token" and "xpired" in json_of(content)["message"]
    assert fake_openai.requests == []


async def test_an_expired_token_is_401_on_v1(fake_openai, expired_token):
    response = await AsyncClient().post(
        "/v1/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {expired_token}"},
    )
    assert response.status_code == 401
    error = json.loads(response.content)["error"]
    assert error["code"] == "invalid_api_key" and "xpired" in error["message"]
    assert fake_openai.requests == []


def test_a_token_works_until_its_expiry(alice):
    token, text = token_create(user=alice, name="soon", expires_at=past(seconds=-60))
    assert works(text)
    ApiToken.objects.filter(pk=token.pk).update(expires_at=past(seconds=0))
    assert not works(text)


# --- REST API: /api/token/ and /api/tokens/ ----------------------------------------------------


def test_login_takes_a_name_and_an_expiry(alice):
    response = APIClient().post(
        TOKEN_URL,
        {"username": "alice", "password": PASSWORD, "name": "deploy script", "expires_in_days": 7},
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == CREATED_FIELDS
    stored = ApiToken.objects.get(pk=body["id"])
    assert stored.name == "deploy script" and stored.digest == token_digest(body["token"])
    assert abs(stored.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert works(body["token"])


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 3651}, "expires_in_days"),
        ({"expires_in_days": "soon"}, "expires_in_days"),
        ({"expires_in_days": 10**30}, "expires_in_days"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
    ],
)
def test_login_with_bad_token_options_is_a_400(alice, extra, field):
    response = APIClient().post(
        TOKEN_URL, {"username": "alice", "password": PASSWORD, **extra}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request" and field in response.json()["fields"]
    assert not ApiToken.objects.exists()


def test_delete_revokes_only_the_token_that_called(alice, alice_token):
    other = token_create(user=alice, name="other")[1]
    assert client_with(alice_token).delete(TOKEN_URL).status_code == 204
    assert not works(alice_token) and works(other)


def test_delete_with_a_session_revokes_all_the_users_tokens(alice, bob, alice_token, bob_token):
    token_create(user=alice, name="second")
    client = Client()
    client.force_login(alice)
    assert client.delete(TOKEN_URL).status_code == 204
    assert not ApiToken.objects.filter(user=alice).exists()
    assert works(bob_token)


def test_tokens_are_created_listed_and_revoked_over_the_api(alice, alice_token):
    client = client_with(alice_token)
    created = client.post(TOKENS_URL, {"name": "CI", "expires_in_days": 30}, format="json")
    assert created.status_code == 201 and created["Cache-Control"] == "no-store"
    body = created.json()
    assert set(body) == CREATED_FIELDS and body["name"] == "CI" and body["expires_at"]
    assert works(body["token"])

    listed = client.get(TOKENS_URL)
    assert listed.status_code == 200
    tokens = listed.json()
    assert [t["name"] for t in tokens] == ["CI", "tests"]  # newest first
    assert all(set(t) == LISTED_FIELDS for t in tokens)
    assert body["token"] not in listed.content.decode() and alice_token not in listed.content.decode()
    assert tokens[1]["last_used_at"] is not None  # the token making these calls

    assert client.delete(f"{TOKENS_URL}{body['id']}/").status_code == 204
    assert not works(body["token"]) and works(alice_token)
    missing = client.delete(f"{TOKENS_URL}{body['id']}/")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_another_users_token_id_is_404_and_left_alone(alice_token, bob, bob_token):
    bobs = ApiToken.objects.get(user=bob)
    response = client_with(alice_token).delete(f"{TOKENS_URL}{bobs.pk}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert works(bob_token)
    assert bob_token not in client_with(alice_token).get(TOKENS_URL).content.decode()
    assert [t["id"] for t in client_with(alice_token).get(TOKENS_URL).json()] != [bobs.pk]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": ["CI"]}, "name"),
        ({"name": "CI", "expires_in_days": -1}, "expires_in_days"),
        ({"name": "CI", "expires_in_days": 1.5}, "expires_in_days"),
        ({"name": "CI", "expires_days": 5}, "expires_days"),  # misspelt: not silently "never"
    ],
)
def test_bad_token_requests_are_400_in_the_one_shape(alice_token, body, field):
    response = client_with(alice_token).post(TOKENS_URL, body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert (error["code"], set(error)) == ("invalid_request", {"message", "code", "settings_url", "fields"})
    assert field in error["fields"]
    assert ApiToken.objects.count() == 1  # only the caller's


def test_token_endpoints_need_authentication(alice):
    for method, url in [("get", TOKENS_URL), ("post", TOKENS_URL), ("delete", f"{TOKENS_URL}1/")]:
        response = getattr(APIClient(), method)(url)
        assert response.status_code == 401 and response.json()["code"] == "not_authenticated"


def test_an_id_too_large_for_the_database_is_a_404(alice_token):
    response = client_with(alice_token).delete(f"{TOKENS_URL}{10**30}/")
    assert response.status_code == 404 and response.json()["code"] == "not_found"


def test_the_schema_documents_the_token_endpoints(transactional_db):
    schema = APIClient().get("/api/schema/", {"format": "json"}).json()
    assert {"get", "post"} <= set(schema["paths"]["/api/tokens/"])
    assert "delete" in schema["paths"]["/api/tokens/{token_id}/"]
    components = schema["components"]["schemas"]
    assert set(components["TokenOutput"]["properties"]) == LISTED_FIELDS
    assert set(components["TokenCreated"]["properties"]) == CREATED_FIELDS
    assert "new token" in schema["paths"]["/api/token/"]["post"]["description"].lower()


def test_no_token_reaches_a_log(alice, alice_token, expired_token, caplog):
    caplog.set_level(logging.DEBUG)
    client_with(alice_token).get(PROFILE_URL)
    client_with(expired_token).get(PROFILE_URL)
    client_with(alice_token + "x").get(PROFILE_URL)
    created = client_with(alice_token).post(TOKENS_URL, {"name": "log test"}, format="json").json()["token"]
    logged = caplog.text + "".join(str(record.args) for record in caplog.records)
    for text in (alice_token, expired_token, created):
        assert text not in logged


# --- the migration from DRF's tokens -----------------------------------------------------------

DRF_KEY = "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b"


def test_the_migration_carries_drf_tokens_over_hashed(alice):
    migration = importlib.import_module("profiles.migrations.0002_apitoken")
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:  # DRF's authtoken_token, as its migrations left it
        cursor.execute(
            f"CREATE TABLE authtoken_token ({quote('key')} varchar(40) NOT NULL PRIMARY KEY, "
            f"created {connection.data_types['DateTimeField']} NOT NULL, "
            "user_id integer NOT NULL UNIQUE REFERENCES auth_user (id))"
        )
        cursor.execute(
            f"INSERT INTO authtoken_token ({quote('key')}, created, user_id) VALUES (%s, %s, %s)",
            [DRF_KEY, connection.ops.adapt_datetimefield_value(created), alice.pk],
        )
    MigrationRecorder(connection).record_applied("authtoken", "0001_initial")
    try:
        with connection.schema_editor() as editor:
            migration.hash_drf_tokens(django_apps, editor)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS authtoken_token")

    assert "authtoken_token" not in connection.introspection.table_names()
    assert not MigrationRecorder(connection).migration_qs.filter(app="authtoken").exists()
    token = ApiToken.objects.get(user=alice)
    assert (token.digest, token.prefix, token.created_at) == (token_digest(DRF_KEY), DRF_KEY[:8], created)
    assert token.name == "API token (from before hashing)" and token.expires_at is None
    # The old token still works, in both header forms and on the async views.
    assert works(DRF_KEY) and client_with(DRF_KEY, "Token").get(PROFILE_URL).status_code == 200
    assert token_authenticate(token=DRF_KEY).user.pk == alice.pk
    out = io.StringIO()
    call_command("dumpdata", stdout=out)
    assert DRF_KEY not in out.getvalue()


def test_the_migration_does_nothing_without_drf_tokens(alice):
    migration = importlib.import_module("profiles.migrations.0002_apitoken")
    with connection.schema_editor() as editor:
        migration.hash_drf_tokens(django_apps, editor)
    assert not ApiToken.objects.exists()
    assert migration.Migration.operations[-1].code is migration.hash_drf_tokens


# --- management command -------------------------------------------------------------------------


def test_create_api_token_prints_a_working_token_once(alice):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "alice", "--name", "CI", "--expires-days", "30", stdout=out, stderr=err)
    text = out.getvalue().strip()
    assert out.getvalue() == text + "\n"  # the token alone: TOKEN=$(manage.py create_api_token alice)
    assert text not in err.getvalue()
    token = ApiToken.objects.get(user=alice)
    assert token.prefix in err.getvalue() and "only this once" in err.getvalue()
    assert (token.name, token.digest) == ("CI", token_digest(text))
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    assert client_with(text, "Token").get(PROFILE_URL).json()["openai_api_key_set"] is True
    # Each run makes another token; none is printed twice.
    again = io.StringIO()
    call_command("create_api_token", "alice", stdout=again, stderr=io.StringIO())
    assert again.getvalue().strip() != text and ApiToken.objects.filter(user=alice).count() == 2
    assert ApiToken.objects.get(user=alice, name="API token").expires_at is None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No user named"),
        (["alice", "--expires-days", "0"], "--expires-days"),
        (["alice", "--name", "  "], "--name"),
    ],
)
def test_create_api_token_refuses_bad_input(alice, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("create_api_token", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ApiToken.objects.exists()


# --- the settings page ------------------------------------------------------------------------


@pytest.fixture
def alice_browser(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def test_settings_page_lists_tokens_without_their_text(alice_browser, alice_token):
    ApiToken.objects.update(last_used_at=past(minutes=5), expires_at=past(days=-10))
    html = alice_browser.get(SETTINGS_PAGE).content.decode()
    assert 'id="api-tokens"' in html and '<h2 id="api-tokens-heading">API tokens</h2>' in html
    for header in ("Name", "Token", "Created", "Last used", "Expires"):
        assert f'<th scope="col">{header}</th>' in html
    assert '<th scope="row">tests</th>' in html and f"<code>{alice_token[:10]}…</code>" in html
    assert "5\xa0minutes ago" in html
    assert alice_token not in html and ApiToken.objects.get().digest not in html
    # how to use one: curl with a Bearer header, the OpenAI SDK with this server's /v1
    assert "Authorization: Bearer $BYOK_TOKEN" in html
    assert 'OpenAI(base_url="http://testserver/v1", api_key=' in html
    assert '<label for="id_token_name">Name</label>' in html
    assert '<label for="id_token_expires_in_days">Expires after (days)</label>' in html


def test_settings_page_creates_a_token_and_shows_it_once(alice, alice_browser):
    response = alice_browser.post(CREATE_PAGE, {"name": "laptop", "expires_in_days": "90"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    html = response.content.decode()
    token = ApiToken.objects.get(user=alice)
    (text,) = re.findall(r'<input id="new-api-token"[^>]* value="(bk-[^"]+)"[^>]*data-new-token>', html)
    assert token_digest(text) == token.digest and html.count(text) == 1
    assert token.name == "laptop" and token.expires_at > timezone.now() + timedelta(days=89)
    assert not list(response.context["messages"])  # not in a message (they live in a cookie)
    assert works(text)
    # Never again: the settings page shows its prefix, not its text.
    again = alice_browser.get(SETTINGS_PAGE).content.decode()
    assert text not in again and f"<code>{token.prefix}…</code>" in again


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": ""}, "This field is required."),
        ({"name": "x", "expires_in_days": "0"}, "greater than or equal to 1"),
        ({"name": "x", "expires_in_days": "many"}, "Enter a whole number."),
    ],
)
def test_settings_page_refuses_a_bad_token_form(alice_browser, data, error):
    response = alice_browser.post(CREATE_PAGE, data)
    assert response.status_code == 200 and error in response.content.decode()
    assert "data-new-token" not in response.content.decode()
    assert not ApiToken.objects.exists()


def test_settings_page_revokes_a_token(alice, alice_browser, alice_token):
    token = ApiToken.objects.get(user=alice)
    url = f"/profile/settings/tokens/{token.pk}/revoke/"
    html = alice_browser.get(SETTINGS_PAGE).content.decode()
    assert f'action="{url}" data-confirm="Revoke the API token “tests”?' in html
    assert alice_browser.get(url).status_code == 405  # POST only
    response = alice_browser.post(url, follow=True)
    assert response.redirect_chain[-1][0] == "/profile/settings/#api-tokens"
    assert "revoked" in [str(m) for m in response.context["messages"]][0]
    assert not works(alice_token)
    again = alice_browser.post(url, follow=True)
    assert "already revoked" in str(list(again.context["messages"])[0])


def test_settings_page_cannot_revoke_another_users_token(alice_browser, bob, bob_token):
    bobs = ApiToken.objects.get(user=bob)
    response = alice_browser.post(f"/profile/settings/tokens/{bobs.pk}/revoke/", follow=True)
    assert "already revoked" in str(list(response.context["messages"])[0])
    assert works(bob_token)


def test_token_pages_need_login_and_csrf(alice, alice_token):
    token = ApiToken.objects.get(user=alice)
    for url in (CREATE_PAGE, f"/profile/settings/tokens/{token.pk}/revoke/"):
        assert Client().post(url, {"name": "x"})["Location"].startswith("/accounts/login/")
        csrf_checked = Client(enforce_csrf_checks=True)
        csrf_checked.force_login(alice)
        assert csrf_checked.post(url, {"name": "x"}).status_code == 403
    assert ApiToken.objects.count() == 1 and works(alice_token)


def test_token_pages_have_no_inline_script_or_style(alice_browser):
    html = alice_browser.post(CREATE_PAGE, {"name": "laptop"}).content.decode()
    assert "<style" not in html and " style=" not in html and " on" + "click=" not in html
    assert all("src=" in tag for tag in html.split("<script")[1:])


# --- the admin ----------------------------------------------------------------------------------


@pytest.fixture
def admin_browser(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


def test_admin_lists_tokens_and_never_shows_a_usable_one(admin_browser, alice, alice_token):
    token = ApiToken.objects.get(user=alice)
    listing = admin_browser.get("/admin/profiles/apitoken/").content.decode()
    for column in ("User", "Name", "Prefix", "Created at", "Last used at", "Expires at"):
        assert column in listing
    assert token.prefix in listing and "alice" in listing
    change = admin_browser.get(f"/admin/profiles/apitoken/{token.pk}/change/")
    assert change.status_code == 200
    for html in (listing, change.content.decode()):
        assert alice_token not in html and token.digest not in html
    assert "digest" not in change.context["adminform"].form.fields
    assert admin_browser.get("/admin/profiles/apitoken/add/").status_code == 403


def test_admin_revokes_a_token(admin_browser, alice, alice_token):
    token = ApiToken.objects.get(user=alice)
    response = admin_browser.post(f"/admin/profiles/apitoken/{token.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not works(alice_token)


# --- in the browser ----------------------------------------------------------------------------


def read_db(call):
    """A database read from the browser test (tests/browser.py's off_thread), its connection closed
    after it: on PostgreSQL a pooled connection left open in a finished thread blocks dropping the
    test database."""
    from tests.browser import off_thread

    def run():
        try:
            return call()
        finally:
            connections.close_all()

    return off_thread(run)


@pytest.mark.browser
def test_a_token_created_on_the_settings_page_is_shown_once(alice, browser_page):
    from tests.axe import axe_violations, describe
    from tests.browser import log_in, screenshot

    page = browser_page
    log_in(page, "alice", PASSWORD)
    page.goto(SETTINGS_PAGE)
    assert page.locator("[data-no-tokens]").is_visible()
    page.fill("#id_token_name", "laptop")
    page.fill("#id_token_expires_in_days", "30")
    page.click("form.token-form button[type=submit]")

    page.wait_for_selector("[data-new-token]")
    text = page.input_value("[data-new-token]")
    assert text.startswith("bk-") and len(text) == 43
    assert page.content().count(text) == 1
    assert page.locator("tr[data-token-row] th").all_inner_texts() == ["laptop"]
    screenshot(page, "api-token-created.png")
    assert not (violations := axe_violations(page)), describe(violations)
    token = read_db(lambda: ApiToken.objects.get(user__username="alice"))
    assert token.digest == token_digest(text) and token.name == "laptop"

    page.goto(SETTINGS_PAGE)  # shown once: from now on only its prefix
    assert page.locator("[data-new-token]").count() == 0
    assert text not in page.content()
    assert page.locator("tr[data-token-row] code").inner_text() == f"{text[:10]}…"
    page.locator("#api-tokens").scroll_into_view_if_needed()
    screenshot(page, "api-tokens-settings.png")
    assert not (violations := axe_violations(page)), describe(violations)

    page.once("dialog", lambda dialog: dialog.accept())  # the data-confirm question
    page.click("tr[data-token-row] button[type=submit]")
    page.wait_for_selector(".flash-success")
    assert "revoked" in page.inner_text(".flash")
    assert page.locator("[data-no-tokens]").is_visible()
    assert read_db(lambda: ApiToken.objects.filter(user__username="alice").exists()) is False
    assert ALICE_KEY not in page.content()
