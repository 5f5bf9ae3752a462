"""The REST API with DRF's test client: tokens, the profile, errors in the one JSON shape, the schema.

alice has a key and an organization, bob has none (conftest.py).
"""

import re

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

from profiles.models import ApiToken, Profile
from profiles.services import profile_openai_credentials
from profiles.tokens import token_digest
from tests.conftest import ALICE_KEY, PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)

PROFILE_URL = "/api/profile/"
TOKEN_URL = "/api/token/"
NEW_KEY = "sk-proj-new-key-0123456789abcdefQRST"


@pytest.fixture(autouse=True)
def _fresh_throttle_history():
    cache.clear()  # failed-login counts live in the cache
    yield
    cache.clear()


def client_with(token: str, scheme: str = "Bearer") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{scheme} {token}")
    return client


def assert_error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert body["settings_url"] == "http://testserver/profile/settings/"
    return body


# --- tokens -----------------------------------------------------------------------------------


def test_password_login_returns_a_token_that_works(alice):
    response = APIClient().post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"token", "id", "name", "prefix", "created_at", "expires_at"}
    token = body["token"]
    stored = ApiToken.objects.get(user=alice)
    assert (stored.pk, stored.digest, stored.name) == (body["id"], token_digest(token), "API token")
    assert token.startswith(body["prefix"]) and body["expires_at"] is None
    assert response["Cache-Control"] == "no-store"
    # Stored hashed, so a login cannot hand back an earlier token: each one makes a new token.
    again = APIClient().post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
    assert again.json()["token"] != token
    assert client_with(token).get(PROFILE_URL).status_code == 200
    assert client_with(again.json()["token"]).get(PROFILE_URL).status_code == 200


def test_form_encoded_login_works_too(alice):
    response = Client().post(TOKEN_URL, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200 and response.json()["token"]


def test_wrong_password_is_refused_in_the_json_shape(alice):
    response = APIClient().post(TOKEN_URL, {"username": "alice", "password": "wrong"}, format="json")
    body = assert_error_shape(response, 400, "invalid_credentials")
    assert "token" not in body
    assert not ApiToken.objects.filter(user=alice).exists()


def test_inactive_user_gets_no_token(alice):
    alice.is_active = False
    alice.save()
    response = APIClient().post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
    assert_error_shape(response, 400, "invalid_credentials")


def test_login_fields_are_validated(transactional_db):
    response = APIClient().post(TOKEN_URL, {"username": 7}, format="json")
    body = assert_error_shape(response, 400, "invalid_request")
    assert body["fields"] == {"username": "Must be a string.", "password": "This field is required."}


def test_failed_logins_are_throttled(alice, settings):
    settings.LOGIN_FAILURE_RATE = "2/min"
    client = APIClient()
    # successful logins cost nothing
    for _ in range(3):
        assert (
            client.post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json").status_code
            == 200
        )
    for _ in range(2):
        assert (
            client.post(TOKEN_URL, {"username": "alice", "password": "guess"}, format="json").status_code
            == 400
        )
    throttled = client.post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
    body = assert_error_shape(throttled, 429, "too_many_failed_logins")
    assert 0 < int(throttled["Retry-After"]) <= 60
    assert f"Try again in {throttled['Retry-After']} seconds" in body["message"]


def test_failed_logins_from_another_address_do_not_count(alice, settings):
    settings.LOGIN_FAILURE_RATE = "1/min"
    client = APIClient()
    client.post(TOKEN_URL, {"username": "alice", "password": "guess"}, format="json", REMOTE_ADDR="10.0.0.1")
    refused = client.post(
        TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.1"
    )
    assert refused.status_code == 429
    # a forged X-Forwarded-For does not reset the count (NUM_PROXIES=0: the peer address counts)
    forged = client.post(
        TOKEN_URL,
        {"username": "alice", "password": PASSWORD},
        format="json",
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="192.0.2.7",
    )
    assert forged.status_code == 429
    other = client.post(
        TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json", REMOTE_ADDR="10.0.0.2"
    )
    assert other.status_code == 200


def test_delete_revokes_the_callers_token(alice, alice_token, bob_token):
    client = client_with(alice_token)
    assert client.delete(TOKEN_URL).status_code == 204
    assert not ApiToken.objects.filter(user=alice).exists()
    assert ApiToken.objects.filter(digest=token_digest(bob_token)).exists()  # only the caller's
    response = client.get(PROFILE_URL)
    assert_error_shape(response, 401, "invalid_token")
    assert response.json()["message"] == "Invalid or revoked API token."
    # a new login gives a new token
    new = (
        APIClient()
        .post(TOKEN_URL, {"username": "alice", "password": PASSWORD}, format="json")
        .json()["token"]
    )
    assert new != alice_token


def test_delete_needs_authentication(transactional_db):
    assert_error_shape(APIClient().delete(TOKEN_URL), 401, "not_authenticated")


# --- authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "bearer"])
def test_token_accepted_in_both_header_forms(alice_token, scheme):
    assert client_with(alice_token, scheme).get(PROFILE_URL).status_code == 200


def test_no_token_is_401_with_a_challenge(transactional_db):
    response = APIClient().get(PROFILE_URL)
    body = assert_error_shape(response, 401, "not_authenticated")
    assert "Authorization" in body["message"]
    assert response["WWW-Authenticate"].startswith("Token")


@pytest.mark.parametrize("header", ["Bearer not-a-real-token", "Bearer", "Bearer two words", "Token \xff"])
def test_bad_token_is_401(transactional_db, header):
    response = APIClient().get(PROFILE_URL, HTTP_AUTHORIZATION=header)
    assert_error_shape(response, 401, "invalid_token")


def test_deactivated_users_token_stops_working(alice, alice_token):
    alice.is_active = False
    alice.save()
    assert_error_shape(client_with(alice_token).get(PROFILE_URL), 401, "invalid_token")


def test_session_callers_need_csrf_for_writes(alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(PROFILE_URL).status_code == 200
    response = client.patch(PROFILE_URL, {"openai_organization_id": "org-x"}, content_type="application/json")
    assert_error_shape(response, 403, "csrf_failed")


# --- profile ----------------------------------------------------------------------------------


def test_profile_shows_hint_never_the_key(alice, alice_token):
    response = client_with(alice_token).get(PROFILE_URL)
    body = response.json()
    assert set(body) == {
        "openai_api_key_set",
        "openai_api_key_hint",
        "openai_organization_id",
        "openai_base_url",
        "key_source",
        "updated_at",
    }
    assert body["openai_api_key_set"] is True
    assert body["key_source"] == "own" and body["openai_base_url"] is None
    assert body["openai_api_key_hint"] == "sk-...WXYZ"
    assert body["openai_organization_id"] == "org-alice123"
    assert body["updated_at"]
    assert ALICE_KEY not in response.content.decode()


def test_another_users_token_sees_only_its_own_profile(alice, bob_token):
    body = client_with(bob_token).get(PROFILE_URL).json()
    assert body == {
        **body,
        "openai_api_key_set": False,
        "openai_api_key_hint": None,
        "openai_organization_id": None,
    }


def test_patch_changes_only_the_callers_profile(alice, bob, bob_token):
    response = client_with(bob_token).patch(PROFILE_URL, {"openai_api_key": NEW_KEY}, format="json")
    assert response.status_code == 200
    assert response.json()["openai_api_key_hint"] == "sk-...QRST"
    assert profile_openai_credentials(profile=Profile.objects.get(user=bob)).api_key == NEW_KEY
    assert profile_openai_credentials(profile=Profile.objects.get(user=alice)).api_key == ALICE_KEY


def test_patch_sets_key_and_organization_and_never_returns_the_key(bob, bob_token):
    response = client_with(bob_token).patch(
        PROFILE_URL,
        {"openai_api_key": f"  {NEW_KEY}\n", "openai_organization_id": "org-bob42"},
        format="json",
    )
    body = response.json()
    assert NEW_KEY not in response.content.decode()
    assert "openai_api_key" not in body
    assert (body["openai_api_key_set"], body["openai_organization_id"]) == (True, "org-bob42")
    credentials = profile_openai_credentials(profile=Profile.objects.get(user=bob))
    assert (credentials.api_key, credentials.organization) == (NEW_KEY, "org-bob42")


@pytest.mark.parametrize("cleared", ["", None])
def test_empty_or_null_clears(alice, alice_token, cleared):
    body = (
        client_with(alice_token)
        .patch(PROFILE_URL, {"openai_api_key": cleared, "openai_organization_id": cleared}, format="json")
        .json()
    )
    assert body["openai_api_key_set"] is False
    assert body["openai_api_key_hint"] is None
    assert body["openai_organization_id"] is None
    profile = Profile.objects.get(user=alice)
    assert (profile.openai_api_key, profile.openai_organization_id) == ("", "")


def test_patch_without_the_key_field_keeps_the_key(alice, alice_token):
    body = (
        client_with(alice_token)
        .patch(PROFILE_URL, {"openai_organization_id": "org-new"}, format="json")
        .json()
    )
    assert body["openai_api_key_set"] is True
    assert profile_openai_credentials(profile=Profile.objects.get(user=alice)).api_key == ALICE_KEY


@pytest.mark.parametrize(
    ("change", "field", "needle"),
    [
        ({"openai_api_key": "my key is sk-abc 123456789012345"}, "openai_api_key", "no spaces"),
        ({"openai_api_key": "pk-live-0123456789abcdefghijkl"}, "openai_api_key", "start with “sk-”"),
        ({"openai_api_key": "sk-short"}, "openai_api_key", "too short"),
        ({"openai_api_key": "sk-" + "x" * 600}, "openai_api_key", "no more than 500"),
        ({"openai_api_key": 12345678901234567890123}, "openai_api_key", "Must be a string"),
        ({"openai_api_key": ["sk-in-a-list-0123456789abcdef"]}, "openai_api_key", "Must be a string"),
        ({"openai_organization_id": "org with spaces"}, "openai_organization_id", "looks like “org-…”"),
        ({"openai_organization_id": {"id": "org-1"}}, "openai_organization_id", "Must be a string"),
        ({"openai_api_key_hint": "sk-...hack"}, "openai_api_key_hint", "Unknown field"),
        ({"user": 1}, "user", "Unknown field"),
    ],
)
def test_invalid_changes_are_refused_per_field(alice, alice_token, change, field, needle):
    response = client_with(alice_token).patch(PROFILE_URL, change, format="json")
    body = assert_error_shape(response, 400, "invalid_request")
    assert needle in body["fields"][field]
    assert body["message"].startswith(f"Invalid request: {field}: ")
    submitted = change.get("openai_api_key")
    if isinstance(submitted, str):
        assert submitted not in response.content.decode()  # a rejected key is never echoed either
    assert profile_openai_credentials(profile=Profile.objects.get(user=alice)).api_key == ALICE_KEY


def test_non_object_body_and_bad_json(alice_token):
    client = client_with(alice_token)
    body = assert_error_shape(client.patch(PROFILE_URL, ["x"], format="json"), 400, "invalid_request")
    assert "Expected a dictionary" in body["message"]
    bad = client.generic("PATCH", PROFILE_URL, b"{nope", content_type="application/json")
    assert_error_shape(bad, 400, "invalid_json")


def test_methods_not_offered_are_405_in_the_json_shape(alice_token):
    response = client_with(alice_token).put(PROFILE_URL, {}, format="json")
    assert_error_shape(response, 405, "method_not_allowed")


# --- schema and docs --------------------------------------------------------------------------


def test_schema_is_valid_and_documents_every_endpoint(transactional_db):
    from drf_spectacular.validation import validate_schema

    response = APIClient().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)
    assert {"/api/profile/", "/api/token/", "/v1/chat/completions", "/v1/models", "/api/chat/openai"} <= set(
        schema["paths"]
    )
    assert {"patch", "get"} <= set(schema["paths"]["/api/profile/"])
    assert {"post", "delete"} <= set(schema["paths"]["/api/token/"])
    schemes = schema["components"]["securitySchemes"]
    assert (schemes["bearerAuth"]["scheme"], schemes["tokenAuth"]["name"]) == ("bearer", "Authorization")
    key_field = schema["components"]["schemas"]["PatchedProfileUpdate"]["properties"]["openai_api_key"]
    assert key_field["writeOnly"] is True
    assert "openai_api_key" not in schema["components"]["schemas"]["ProfileOutput"]["properties"]


def test_docs_page_loads_everything_from_this_server(transactional_db):
    client = Client()
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    # no inline script or style (the CSP allows neither), nothing from another origin
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "<style" not in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/") for url in urls), urls
    script = client.get(next(url for url in urls if "script" in url))
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()
    assert "/api/schema/" in script.content.decode()
    from django.contrib.staticfiles import finders

    for url in urls:
        if url.startswith("/static/"):
            assert finders.find(url.removeprefix("/static/")), url  # shipped by drf-spectacular-sidecar


@pytest.mark.browser
def test_docs_page_works_in_a_browser_under_the_csp(browser_page):
    """Swagger UI from the sidecar's files: it renders every endpoint, with no CSP violation or script
    error."""
    browser_page.goto("/api/docs/")
    browser_page.wait_for_selector(".opblock-summary-path")
    paths = set(browser_page.locator(".opblock-summary-path").all_inner_texts())
    assert {"/api/profile/", "/api/token/", "/v1/chat/completions", "/v1/models", "/api/chat/openai"} <= paths
