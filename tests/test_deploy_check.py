"""`manage.py check --deploy` with production settings from the environment: no warnings at all.

Run in a subprocess: settings are read from the environment once, at start-up.
"""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests import leakcheck

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "PROFILE_ENCRYPTION_KEYS": f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
    "EMAIL_URL": "smtp+tls://mailer:mail-password@mail.example.com:587",
    "DEFAULT_FROM_EMAIL": "BYOK Chat <noreply@chat.example.com>",
}


def manage(*args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    # Only what this test sets (and what Python needs), so a developer's own environment cannot
    # make it pass or fail.
    env = {name: os.environ[name] for name in ("PATH", "HOME", "SYSTEMROOT") if name in os.environ}
    run = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**env, **environment},
        capture_output=True,
        text=True,
        timeout=120,
    )
    leakcheck.record("manage.py " + " ".join(args), run.stdout + run.stderr)
    return run


@pytest.mark.slow
def test_deploy_check_passes_without_a_single_warning():
    run = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, SECURE_HSTS_PRELOAD="true")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "System check identified no issues (0 silenced)." in run.stdout


@pytest.mark.slow
def test_https_settings_are_on_by_default_once_debug_is_off():
    # Only HSTS preloading, a promise about the whole domain, waits to be asked for.
    run = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert run.returncode == 1
    warnings = {line.split(")")[0].split("(")[-1] for line in run.stderr.splitlines() if "(security." in line}
    assert warnings == {"security.W021"}, run.stderr


@pytest.mark.slow
def test_each_https_setting_can_be_turned_off_for_a_proxy_that_does_it():
    run = manage(
        "shell",
        "-c",
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_PROXY_SSL_HEADER)",
        **PRODUCTION,
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="0",
        SESSION_COOKIE_SECURE="no",
        CSRF_COOKIE_SECURE="0",
        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO,https",
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "False 0 False False ('HTTP_X_FORWARDED_PROTO', 'https')"


@pytest.mark.slow
def test_no_key_ring_is_an_error_in_production():
    run = manage("check", "--deploy", **{**PRODUCTION, "PROFILE_ENCRYPTION_KEYS": ""})
    assert run.returncode == 1
    assert "profiles.E001" in run.stderr


@pytest.mark.slow
def test_production_without_an_email_server_is_an_error():
    """Password-reset e-mails printed on a server's console reach nobody: Django's mail.E001."""
    production = {name: value for name, value in PRODUCTION.items() if name != "EMAIL_URL"}
    run = manage("check", "--deploy", **production, SECURE_HSTS_PRELOAD="true")
    assert run.returncode == 1
    assert "mail.E001" in run.stderr
