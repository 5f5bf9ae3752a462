"""manage.py rotate_profile_keys: every key moves to the newest ring key, in batches, resumably;
what cannot be decrypted is counted, listed and left exactly as it was."""

import io

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db.models import TextField, Value
from django.db.models.functions import Cast

from profiles import crypto
from profiles.models import Profile, TeamKey
from profiles.services import profile_for, profile_set_openai_key, team_key_get, team_key_set_openai_key
from tests import leakcheck

pytestmark = pytest.mark.django_db

OLD, NEW, LOST = (Fernet.generate_key().decode() for _ in range(3))
KEYS = {f"user{i}": f"sk-rotate-test-key-{i:04d}-abcdefgh" for i in range(5)}


def make_user(username: str, *, api_key: str | None = None):
    user = get_user_model().objects.create(username=username)  # no password: hashing is slow
    if api_key:
        profile_set_openai_key(profile=profile_for(user=user), api_key=api_key)
    return user


def stored_tokens() -> dict[str, str]:
    return dict(
        Profile.objects.annotate(raw=Cast("openai_api_key", TextField())).values_list("user__username", "raw")
    )


def rotate(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("rotate_profile_keys", *args, stdout=out, stderr=err)
    leakcheck.record("rotate_profile_keys output", out.getvalue() + err.getvalue())
    return out.getvalue(), err.getvalue()


@pytest.fixture
def profiles_under_old_key(settings):
    settings.PROFILE_ENCRYPTION_KEYS = [OLD]
    users = {name: make_user(name, api_key=key) for name, key in KEYS.items()}
    make_user("nokey")
    lost = make_user("lost")  # a key encrypted under a ring key nobody has any more
    lost_token = Fernet(LOST).encrypt(b"sk-lost-key-0000000000").decode()
    Profile.objects.filter(user=lost).update(openai_api_key=Value(lost_token, output_field=TextField()))
    settings.PROFILE_ENCRYPTION_KEYS = [NEW, OLD]  # step 1 of a rotation: the new key goes first
    return users, lost


def test_rotates_every_key_to_the_newest(profiles_under_old_key, settings):
    _, lost = profiles_under_old_key
    before = stored_tokens()
    out, err = rotate("--batch-size", "2")

    assert "Done: rotated 5, already current 0, empty 1, unreadable 1, changed meanwhile 0." in out
    after = stored_tokens()
    for name, key in KEYS.items():
        assert Fernet(NEW).decrypt(after[name].encode()).decode() == key
    assert after["lost"] == before["lost"]  # untouched, byte for byte
    assert after["nokey"] == ""
    assert f"profile id {lost.profile.pk} (user lost)" in err
    for key in KEYS.values():
        assert key not in out + err

    settings.PROFILE_ENCRYPTION_KEYS = [NEW]  # the old key can go now
    assert {
        p.user.username: p.openai_api_key for p in Profile.objects.filter(user__username__in=KEYS)
    } == KEYS


def test_reports_progress_per_batch_in_id_order(profiles_under_old_key):
    out, _ = rotate("--batch-size", "3")
    ids = sorted(Profile.objects.values_list("pk", flat=True))
    progress = [line for line in out.splitlines() if line.startswith("up to profile id")]
    assert [int(line.split()[4].rstrip(":")) for line in progress] == [ids[2], ids[5], ids[6]]


def test_resumes_after_an_id(profiles_under_old_key):
    ids = sorted(Profile.objects.values_list("pk", flat=True))
    before = stored_tokens()
    out, _ = rotate("--after-id", str(ids[2]))
    after = stored_tokens()
    by_id = dict(Profile.objects.values_list("pk", "user__username"))
    for pk in ids[:3]:
        assert after[by_id[pk]] == before[by_id[pk]]  # before the resume point: not visited
    assert "rotated 2" in out  # user3, user4 (then nokey and lost)

    out, _ = rotate()  # a full run afterwards finishes the job and redoes nothing
    assert "Done: rotated 3, already current 2, empty 1, unreadable 1" in out


def test_second_run_finds_everything_current(profiles_under_old_key):
    rotate()
    before = stored_tokens()
    out, _ = rotate()
    assert "Done: rotated 0, already current 5, empty 1, unreadable 1" in out
    assert stored_tokens() == before


def test_dry_run_writes_nothing(profiles_under_old_key):
    before = stored_tokens()
    out, _ = rotate("--dry-run")
    assert "dry run: nothing written" in out and "rotated 5" in out
    assert stored_tokens() == before


def test_a_key_saved_during_the_run_is_not_overwritten(profiles_under_old_key, monkeypatch):
    users, _ = profiles_under_old_key
    real_reencrypt = crypto.reencrypt

    def owner_saves_a_new_key_meanwhile(token: str) -> str:
        rotated = real_reencrypt(token)
        if Fernet(OLD).decrypt(token.encode()).decode() == KEYS["user1"]:
            profile_set_openai_key(profile=users["user1"].profile, api_key="sk-brand-new-key-1111111111")
        return rotated

    monkeypatch.setattr(crypto, "reencrypt", owner_saves_a_new_key_meanwhile)
    out, _ = rotate()
    assert "changed meanwhile 1" in out
    assert Profile.objects.get(user=users["user1"]).openai_api_key == "sk-brand-new-key-1111111111"


def test_single_key_ring_has_nothing_to_rotate(settings):
    settings.PROFILE_ENCRYPTION_KEYS = [NEW]
    make_user("solo", api_key="sk-solo-key-000000000000")
    out, _ = rotate()
    assert "one key" in out and "rotated 0, already current 1" in out


def test_unusable_ring_is_an_error(settings):
    settings.PROFILE_ENCRYPTION_KEYS = ["not-a-fernet-key"]
    with pytest.raises(CommandError, match="not a valid Fernet key"):
        rotate()


def test_rotates_the_team_key_too(settings):
    team_key = "sk-team-rotate-0123456789abcdefgh"
    settings.PROFILE_ENCRYPTION_KEYS = [OLD]
    team_key_set_openai_key(team_key=team_key_get(), api_key=team_key)
    settings.PROFILE_ENCRYPTION_KEYS = [NEW, OLD]

    out, err = rotate()
    assert "team key: rotated 1" in out and "Done: rotated 1, already current 0" in out
    stored = (
        TeamKey.objects.annotate(raw=Cast("openai_api_key", TextField())).values_list("raw", flat=True).get()
    )
    assert Fernet(NEW).decrypt(stored.encode()).decode() == team_key
    assert team_key not in out + err

    assert "Done: rotated 0, already current 1" in rotate()[0]  # and again: nothing left to do


def test_an_unreadable_team_key_is_listed_and_left_alone(settings):
    team_key_get()
    lost_token = Fernet(LOST).encrypt(b"sk-lost-team-key-000000000").decode()
    TeamKey.objects.update(openai_api_key=Value(lost_token, output_field=TextField()))
    settings.PROFILE_ENCRYPTION_KEYS = [NEW, OLD]
    _, err = rotate()
    assert "  the team key" in err
    stored = (
        TeamKey.objects.annotate(raw=Cast("openai_api_key", TextField())).values_list("raw", flat=True).get()
    )
    assert stored == lost_token
