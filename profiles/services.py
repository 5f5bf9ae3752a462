"""Business operations on profiles: plain functions, the only writers of credentials."""

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from core.errors import ApiError
from upstream import client as upstream
from upstream.credentials import OpenAICredentials

from .exceptions import KEY_MISSING, KEY_UNREADABLE, OpenAIKeyMissing, OpenAIKeyUnreadable
from .fields import UnreadableSecret
from .models import Profile


def profile_for(*, user: AbstractBaseUser) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def profile_set_openai_key(*, profile: Profile, api_key: str) -> Profile:
    profile.openai_api_key = api_key.strip()
    profile.openai_api_key_updated_at = timezone.now()
    profile.save(update_fields=["openai_api_key", "openai_api_key_updated_at", "updated_at"])
    return profile


def profile_clear_openai_key(*, profile: Profile) -> Profile:
    profile.openai_api_key = ""
    profile.openai_api_key_updated_at = timezone.now()
    profile.save(update_fields=["openai_api_key", "openai_api_key_updated_at", "updated_at"])
    return profile


def profile_set_organization(*, profile: Profile, organization_id: str | None) -> Profile:
    profile.openai_organization_id = (organization_id or "").strip()
    profile.save(update_fields=["openai_organization_id", "updated_at"])
    return profile


def profile_openai_credentials(*, profile: Profile) -> OpenAICredentials:
    """The decrypted key for one upstream call. Raises OpenAIKeyMissing / OpenAIKeyUnreadable."""
    key = profile.openai_api_key
    if not key:
        raise OpenAIKeyMissing()
    if isinstance(key, UnreadableSecret):
        raise OpenAIKeyUnreadable()
    return OpenAICredentials(api_key=key, organization=profile.openai_organization_id or None)


def profile_api_credentials(*, profile: Profile) -> OpenAICredentials:
    """profile_openai_credentials for an API call: a missing or unreadable key is its ApiError (400,
    with the link to the settings page where it is fixed)."""
    try:
        return profile_openai_credentials(profile=profile)
    except OpenAIKeyMissing:
        raise KEY_MISSING from None
    except OpenAIKeyUnreadable:
        raise KEY_UNREADABLE from None


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """What the upstream said of a key: ok, or an error code and a message for its owner."""

    ok: bool
    code: str = ""
    message: str = ""


async def openai_credentials_check(*, credentials: OpenAICredentials) -> KeyCheck:
    """Ask the upstream whether these credentials work (GET /models); never raises for upstream errors."""
    try:
        await upstream.get_models(credentials=credentials)
    except ApiError as error:
        return KeyCheck(ok=False, code=error.code, message=error.message)
    return KeyCheck(ok=True)
