"""Profiles: created for every user, keys encrypted at rest with a rotatable key ring."""

import logging

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection

from profiles import crypto
from profiles.checks import check_key_ring, development_key_reasons, raise_on_key_ring_errors
from profiles.exceptions import OpenAIKeyMissing, OpenAIKeyUnreadable
from profiles.fields import UnreadableSecret
from profiles.models import Profile
from profiles.services import (
    profile_clear_openai_key,
    profile_openai_credentials,
    profile_set_openai_key,
    profile_set_organization,
)
from tests.conftest import ALICE_KEY

pytestmark = pytest.mark.django_db

User = get_user_model()


def raw_stored_key(profile: Profile) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT openai_api_key FROM profiles_profile WHERE id = %s", [profile.pk])
        return cursor.fetchone()[0]


def test_every_new_user_gets_a_profile():
    user = User.objects.create_user("erin", password="x")
    assert isinstance(user.profile, Profile)
    assert user.profile.openai_api_key == ""


def test_createsuperuser_gets_a_profile(monkeypatch):
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "a-long-enough-password-42")
    call_command("createsuperuser", "--noinput", username="root", email="root@example.com", verbosity=0)
    assert Profile.objects.filter(user__username="root").exists()


def test_database_holds_only_ciphertext(settings, alice):
    stored = raw_stored_key(alice.profile)
    assert ALICE_KEY not in stored
    assert ALICE_KEY[-8:] not in stored
    assert stored.startswith("gAAAAA")  # a Fernet token
    assert Fernet(settings.PROFILE_ENCRYPTION_KEYS[0]).decrypt(stored.encode()).decode() == ALICE_KEY
    assert Profile.objects.get(pk=alice.profile.pk).openai_api_key == ALICE_KEY


def test_each_save_uses_a_fresh_token(alice):
    first = raw_stored_key(alice.profile)
    profile_set_openai_key(profile=alice.profile, api_key=ALICE_KEY)
    assert raw_stored_key(alice.profile) != first  # random IV: equal keys are not equal rows


def test_rotation_across_two_ring_keys(settings, alice):
    old_key = settings.PROFILE_ENCRYPTION_KEYS[0]
    new_key = Fernet.generate_key().decode()
    old_token = raw_stored_key(alice.profile)

    settings.PROFILE_ENCRYPTION_KEYS = [new_key, old_key]  # newest first
    profile = Profile.objects.get(pk=alice.profile.pk)
    assert profile.openai_api_key == ALICE_KEY  # the old key still decrypts

    profile.save()  # re-encrypts with the newest key
    new_token = raw_stored_key(profile)
    assert Fernet(new_key).decrypt(new_token.encode()).decode() == ALICE_KEY
    with pytest.raises(InvalidToken):
        Fernet(old_key).decrypt(new_token.encode())
    assert Fernet(old_key).decrypt(old_token.encode()).decode() == ALICE_KEY

    settings.PROFILE_ENCRYPTION_KEYS = [new_key]  # the old key retired
    assert Profile.objects.get(pk=profile.pk).openai_api_key == ALICE_KEY


def test_lost_ring_key_makes_the_key_unreadable_not_an_error(settings, alice):
    token = raw_stored_key(alice.profile)
    settings.PROFILE_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    profile = Profile.objects.get(pk=alice.profile.pk)
    assert isinstance(profile.openai_api_key, UnreadableSecret)
    assert profile.openai_api_key_hint == "unreadable"
    with pytest.raises(OpenAIKeyUnreadable):
        profile_openai_credentials(profile=profile)
    # saving something else keeps the stored token as it was: nothing is lost
    profile_set_organization(profile=profile, organization_id="org-new")
    assert raw_stored_key(profile) == token


def test_services_set_read_and_clear(bob):
    profile = bob.profile
    with pytest.raises(OpenAIKeyMissing):
        profile_openai_credentials(profile=profile)
    profile_set_openai_key(profile=profile, api_key="  sk-bob-0000000000001234  ")
    profile_set_organization(profile=profile, organization_id="org-bob")
    credentials = profile_openai_credentials(profile=Profile.objects.get(pk=profile.pk))
    assert credentials.api_key == "sk-bob-0000000000001234"
    assert credentials.organization == "org-bob"
    assert "sk-bob" not in repr(credentials)
    assert profile.openai_api_key_hint == "sk-...1234"
    assert profile.openai_api_key_updated_at is not None
    profile_clear_openai_key(profile=profile)
    assert raw_stored_key(profile) == ""
    with pytest.raises(OpenAIKeyMissing):
        profile_openai_credentials(profile=Profile.objects.get(pk=profile.pk))


def test_no_keys_without_debug_stops_the_server(settings):
    settings.DEBUG = False
    settings.PROFILE_ENCRYPTION_KEYS = []
    errors = check_key_ring()
    assert [e.id for e in errors] == ["profiles.E001"]
    with pytest.raises(SystemCheckError):
        raise_on_key_ring_errors()


def test_malformed_key_is_reported_by_position(settings):
    settings.PROFILE_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "not-a-key"]
    errors = check_key_ring()
    assert len(errors) == 1
    assert "PROFILE_ENCRYPTION_KEYS entry #2 (of 2)" in errors[0].msg
    assert "not-a-key" not in errors[0].msg  # never echo key material


def test_debug_without_keys_derives_a_dev_key(settings, caplog):
    settings.DEBUG = True
    settings.PROFILE_ENCRYPTION_KEYS = []
    settings.SECRET_KEY = "a-distinct-secret-for-this-test"
    assert check_key_ring() == []
    with caplog.at_level(logging.WARNING):
        token = crypto.encrypt("sk-dev")
        assert crypto.decrypt(token) == "sk-dev"
    # The warning is the server's, once at start-up (tests/test_first_run.py), not the first save's.
    assert not caplog.records
    assert development_key_reasons() == [
        "PROFILE_ENCRYPTION_KEYS is not set, so stored OpenAI keys are encrypted with a key derived from "
        "SECRET_KEY (anyone holding the database and that SECRET_KEY can decrypt them)"
    ]
