"""The password-reset flow end to end, in real headless Chromium against the app under uvicorn.

The server runs in the test process (conftest.LiveASGIServer), so the e-mail it sends lands in
django.core.mail.outbox: pytest-django swaps the locmem backend in for the run.
"""

import re

import pytest
from django.conf import settings
from django.core import mail

from profiles.models import Profile
from tests.browser import log_in, off_thread, screenshot
from tests.conftest import PASSWORD

pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.browser

NEW_PASSWORD = "reset from the browser 7"


def test_forgotten_password_reset_by_email_then_log_in(bob, browser_page, live_app):
    assert settings.MAILERS["default"]["BACKEND"] == "django.core.mail.backends.locmem.EmailBackend"
    page = browser_page
    page.goto("/accounts/login/")
    page.click("text=Forgot your password?")
    page.wait_for_url("**/accounts/password_reset/")
    page.fill("#id_email", "bob@example.com")
    screenshot(page, "password-reset.png")
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/accounts/password_reset/done/")
    assert "Check your e-mail" in page.inner_text("h1")

    (message,) = mail.outbox
    assert message.to == ["bob@example.com"]
    link = re.search(rf"{re.escape(live_app)}/accounts/reset/\S+/", message.body)
    assert link, message.body

    page.goto(link[0])
    page.wait_for_url("**/accounts/reset/*/set-password/")
    page.fill("#id_new_password1", NEW_PASSWORD)
    page.fill("#id_new_password2", NEW_PASSWORD)
    page.click("form.form button[type=submit]")
    page.wait_for_url("**/accounts/reset/done/")
    assert "Password set" in page.inner_text("h1")

    log_in(page, "bob", NEW_PASSWORD)  # lands on the chat page
    assert page.inner_text(".account-name") == "bob"
    user = off_thread(lambda: Profile.objects.select_related("user").get(user__username="bob").user)
    assert user.check_password(NEW_PASSWORD) and not user.check_password(PASSWORD)

    page.goto(link[0])  # used once: no second password change with the same link
    assert "This link no longer works" in page.inner_text("h1")
