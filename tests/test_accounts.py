"""Password change and password reset (Django's views in our templates), with Django's test client.

E-mail goes to django.core.mail.outbox: pytest-django puts the locmem backend in place for the run.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from profiles.tokens import token_create, token_list
from tests.conftest import PASSWORD, make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
ROOT = Path(__file__).resolve().parent.parent
NEW_PASSWORD = "a brand new passphrase 42"
RESET_LINK = re.compile(r"http://testserver(/accounts/reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def erin(db):
    return make_user("erin")


def logged_in(user) -> Client:
    client = Client()
    assert (
        client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    )
    return client


def is_logged_in(client: Client) -> bool:
    return client.get("/profile/settings/").status_code == 200


def html_of(response) -> str:
    return response.content.decode()


def assert_accessible(html: str) -> None:
    """Every aria-describedby names ids that exist; every input has a label; no inline script or style."""
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    for described_by in re.findall(r'aria-describedby="([^"]*)"', html):
        for target in described_by.split():
            assert target in ids, f"aria-describedby points at a missing id: {target}"
    for input_id in re.findall(r'<input(?![^>]*type="hidden")[^>]*\sid="([^"]+)"', html):
        assert f'for="{input_id}"' in html, f"input without a label: {input_id}"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\son[a-z]+\s*=", html)
    assert not re.search(r"<style|\sstyle=", html)


# --- links --------------------------------------------------------------------------------------


def test_login_page_links_to_the_password_reset(client):
    assert 'href="/accounts/password_reset/">Forgot your password?</a>' in html_of(
        client.get("/accounts/login/")
    )


def test_settings_page_links_to_the_password_change(erin):
    html = html_of(logged_in(erin).get("/profile/settings/"))
    assert 'href="/accounts/password_change/"' in html and "Change password" in html


# --- password change ------------------------------------------------------------------------------


def test_password_change_needs_login(client):
    assert client.get("/accounts/password_change/")["Location"].startswith("/accounts/login/")


def test_password_change_page_is_ours_and_accessible(erin):
    client = logged_in(erin)
    page = html_of(client.get("/accounts/password_change/"))
    assert 'class="card auth-card"' in page  # our base.html, not the admin's look
    for name in ("old_password", "new_password1", "new_password2"):
        assert f'name="{name}"' in page
    assert_accessible(page)

    errors = client.post(
        "/accounts/password_change/",
        {"old_password": "wrong", "new_password1": NEW_PASSWORD, "new_password2": "something else"},
    )
    assert errors.status_code == 200
    html = html_of(errors)
    assert 'id="id_old_password_error"' in html and 'aria-invalid="true"' in html
    assert_accessible(html)
    erin.refresh_from_db()
    assert erin.check_password(PASSWORD)


def test_changing_the_password_ends_the_other_sessions_and_keeps_this_one(erin):
    here, elsewhere = logged_in(erin), logged_in(erin)
    response = here.post(
        "/accounts/password_change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 302 and response["Location"] == "/accounts/password_change/done/"
    assert is_logged_in(here)
    assert not is_logged_in(elsewhere)
    assert elsewhere.get("/profile/settings/")["Location"].startswith("/accounts/login/")
    erin.refresh_from_db()
    assert erin.check_password(NEW_PASSWORD)


def test_the_admins_own_password_change_keeps_the_admins_look(admin_client):
    page = html_of(admin_client.get("/admin/password_change/"))
    assert "Django administration" in page and "auth-card" not in page


def test_done_page_offers_to_revoke_the_api_tokens(erin, client):
    token_create(user=erin, name="laptop")
    token_create(user=erin, name="ci")
    client.force_login(erin)
    page = html_of(client.get("/accounts/password_change/done/"))
    assert "Password changed" in page
    assert "Also revoke all my API tokens (2)" in page
    assert 'action="/accounts/password_change/revoke_tokens/"' in page
    assert_accessible(page)


def test_done_page_without_tokens_offers_nothing_to_revoke(erin, client):
    client.force_login(erin)
    page = html_of(client.get("/accounts/password_change/done/"))
    assert "Password changed" in page and "revoke" not in page.lower()


def test_revoking_all_tokens_after_a_change(erin, client):
    _, text = token_create(user=erin, name="laptop")
    token_create(user=erin, name="ci")
    other = make_user("frank")
    _, franks = token_create(user=other, name="franks")
    client.force_login(erin)
    assert Client().get("/api/profile/", HTTP_AUTHORIZATION=f"Bearer {text}").status_code == 200

    response = client.post("/accounts/password_change/revoke_tokens/", follow=True)
    assert response.redirect_chain == [("/profile/settings/", 302)]
    assert "Revoked 2 API tokens: they no longer work." in html_of(response)
    assert not token_list(user=erin).exists()
    assert Client().get("/api/profile/", HTTP_AUTHORIZATION=f"Bearer {text}").status_code == 401
    assert Client().get("/api/profile/", HTTP_AUTHORIZATION=f"Bearer {franks}").status_code == 200


def test_revoking_tokens_needs_a_logged_in_post(erin, client):
    token_create(user=erin, name="laptop")
    assert client.post("/accounts/password_change/revoke_tokens/")["Location"].startswith("/accounts/login/")
    client.force_login(erin)
    assert client.get("/accounts/password_change/revoke_tokens/").status_code == 405
    assert token_list(user=erin).count() == 1


# --- password reset ---------------------------------------------------------------------------------


def request_reset(client: Client, email: str):
    return client.post("/accounts/password_reset/", {"email": email})


def reset_link_of(message) -> str:
    match = RESET_LINK.search(message.body)
    assert match, message.body
    return match[1]


def test_reset_page_is_ours_and_accessible(client):
    page = html_of(client.get("/accounts/password_reset/"))
    assert 'class="card auth-card"' in page and 'name="email"' in page
    assert_accessible(page)
    invalid = html_of(request_reset(client, "not an address"))
    assert 'id="id_email_error"' in invalid
    assert_accessible(invalid)


def test_reset_answers_the_same_for_a_known_and_an_unknown_address(client, erin):
    known = request_reset(client, "erin@example.com")
    unknown = request_reset(client, "nobody@example.com")
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password_reset/done/"
    assert html_of(client.get(known["Location"])) == html_of(client.get(unknown["Location"]))
    assert [message.to for message in mail.outbox] == [["erin@example.com"]]


def test_reset_email_has_a_link_that_sets_the_password_once(client, erin, settings):
    settings.DEFAULT_FROM_EMAIL = "BYOK Chat <accounts@chat.example>"
    elsewhere = logged_in(erin)
    request_reset(client, "ERIN@example.com")  # the address matches whatever its case
    (message,) = mail.outbox
    assert message.from_email == "BYOK Chat <accounts@chat.example>"
    assert message.subject == "Reset your BYOK Chat password"
    assert "It works once, for 1 hour." in message.body and "erin" in message.body
    link = reset_link_of(message)

    form = client.get(link, follow=True)  # Django moves the token into the session, then redirects
    assert "Choose a new password" in html_of(form)
    assert_accessible(html_of(form))
    set_url = form.redirect_chain[-1][0]
    done = client.post(set_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done["Location"] == "/accounts/reset/done/"
    assert "Log in with it" in html_of(client.get(done["Location"]))

    erin.refresh_from_db()
    assert erin.check_password(NEW_PASSWORD)
    assert not is_logged_in(elsewhere)  # a reset ends every session
    used = Client().get(link, follow=True)
    assert "This link no longer works" in html_of(used)


@pytest.mark.slow
def test_reset_link_expires(client, erin, settings):
    settings.PASSWORD_RESET_TIMEOUT = 1
    request_reset(client, "erin@example.com")
    link = reset_link_of(mail.outbox[0])
    time.sleep(2.1)  # the token's clock counts whole seconds
    page = html_of(client.get(link, follow=True))
    assert "This link no longer works" in page and 'name="new_password1"' not in page


def test_reset_page_says_how_long_the_link_works(client, settings):
    settings.PASSWORD_RESET_TIMEOUT = 30 * 60
    assert "It works once, for 30 minutes." in html_of(client.get("/accounts/password_reset/done/"))


def test_no_reset_email_for_a_deactivated_user(client, erin):
    erin.is_active = False
    erin.save()
    assert request_reset(client, "erin@example.com")["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []


# --- e-mail settings ------------------------------------------------------------------------------


def settings_in_subprocess(environment: dict[str, str]) -> dict:
    """MAILERS, DEFAULT_FROM_EMAIL and PASSWORD_RESET_TIMEOUT as the settings module reads them."""
    code = (
        "import django, os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'chatproject.settings';"
        "django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.MAILERS, s.DEFAULT_FROM_EMAIL, s.PASSWORD_RESET_TIMEOUT]))"
    )
    run = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    mailers, sender, timeout = json.loads(run.stdout)
    return {"MAILERS": mailers, "DEFAULT_FROM_EMAIL": sender, "PASSWORD_RESET_TIMEOUT": timeout}


@pytest.mark.slow
def test_email_url_configures_smtp_and_the_sender():
    configured = settings_in_subprocess(
        {
            **os.environ,
            "EMAIL_URL": "smtp+tls://mailer:s%40cret@mail.example.com:587",
            "DEFAULT_FROM_EMAIL": "Chat <chat@example.com>",
            "PASSWORD_RESET_TIMEOUT": "900",
        }
    )
    assert configured == {
        "MAILERS": {
            "default": {
                "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                "OPTIONS": {
                    "host": "mail.example.com",
                    "port": 587,
                    "username": "mailer",
                    "password": "s@cret",
                    "use_tls": True,
                    "timeout": 10,
                },
            }
        },
        "DEFAULT_FROM_EMAIL": "Chat <chat@example.com>",
        "PASSWORD_RESET_TIMEOUT": 900,
    }


def test_email_goes_to_the_console_by_default():
    unset = ("EMAIL_URL", "DEFAULT_FROM_EMAIL", "PASSWORD_RESET_TIMEOUT")
    configured = settings_in_subprocess({k: v for k, v in os.environ.items() if k not in unset})
    assert configured["MAILERS"] == {
        "default": {"BACKEND": "django.core.mail.backends.console.EmailBackend", "OPTIONS": {}}
    }
    assert configured["PASSWORD_RESET_TIMEOUT"] == 3600  # an hour
