"""Business operations on profiles: plain functions, the only writers of credentials."""

from dataclasses import dataclass
from typing import Literal

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User  # AUTH_USER_MODEL: Django's own
from django.db import connections
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from core.errors import ApiError
from upstream import client as upstream
from upstream import host_guard
from upstream.credentials import OpenAICredentials

from .exceptions import (
    KEY_MISSING,
    KEY_UNREADABLE,
    TEAM_KEY_UNREADABLE,
    OpenAIKeyMissing,
    OpenAIKeyUnreadable,
    TeamKeyUnreadable,
)
from .fields import UnreadableSecret
from .models import Profile, TeamKey

KeyInUse = Literal["own", "team", "none"]


def profile_for(*, user: User) -> Profile:
    profile, _ = Profile.objects.get_or_create(user=user)
    return profile


def _store_openai_key(holder: Profile | TeamKey, api_key: str) -> None:
    """Both holders of a stored key (a user's profile, the team key): encrypted by the field, with
    when it last changed. "" clears it."""
    holder.openai_api_key = api_key
    holder.openai_api_key_updated_at = timezone.now()
    holder.save(update_fields=["openai_api_key", "openai_api_key_updated_at", "updated_at"])


def profile_set_openai_key(*, profile: Profile, api_key: str) -> Profile:
    _store_openai_key(profile, api_key.strip())
    return profile


def profile_clear_openai_key(*, profile: Profile) -> Profile:
    _store_openai_key(profile, "")
    return profile


def profile_set_organization(*, profile: Profile, organization_id: str | None) -> Profile:
    profile.openai_organization_id = (organization_id or "").strip()
    profile.save(update_fields=["openai_organization_id", "updated_at"])
    return profile


def profile_set_base_url(*, profile: Profile, base_url: str | None) -> Profile:
    """Where the user's own key goes ("" or None: the server's default). Checked by the SSRF guard
    (a blocking name lookup); raises host_guard.HostRefused, and saves nothing then."""
    base_url = (base_url or "").strip()
    profile.openai_base_url = host_guard.check_base_url(base_url) if base_url else ""
    profile.save(update_fields=["openai_base_url", "updated_at"])
    return profile


def profile_base_url(*, profile: Profile) -> str | None:
    """The base URL the user's own key goes to; None for the server's. A stored one counts only
    while USER_BASE_URL_ENABLED is on: an operator who turns it off stops every call to them."""
    return (profile.openai_base_url or None) if settings.USER_BASE_URL_ENABLED else None


def profile_openai_credentials(*, profile: Profile) -> OpenAICredentials:
    """The decrypted key for one upstream call: the user's own, else the team key if they may use
    it. Raises OpenAIKeyMissing / OpenAIKeyUnreadable.

    A user with a key of their own pays no query here (the profile is loaded already); the others
    pay one (team_key_for). Not cached: a key staff clear or a group they leave stops working at once.
    """
    key = profile.openai_api_key
    if not key:
        team = team_key_for(user_id=profile.user_id)
        if team is None:
            raise OpenAIKeyMissing()
        return team_key_credentials(team_key=team)
    if isinstance(key, UnreadableSecret):
        raise OpenAIKeyUnreadable()
    return OpenAICredentials(
        api_key=key,
        organization=profile.openai_organization_id or None,
        base_url=profile_base_url(profile=profile),
        source="own",
    )


def profile_api_credentials(*, profile: Profile) -> OpenAICredentials:
    """profile_openai_credentials for an API call: a missing or unreadable key is its ApiError (400,
    with the link to the settings page where it is fixed). Sync (a key-less user's team key lookup
    is a query): async views use aprofile_api_credentials."""
    try:
        return profile_openai_credentials(profile=profile)
    except OpenAIKeyMissing:
        raise KEY_MISSING from None
    except TeamKeyUnreadable:
        raise TEAM_KEY_UNREADABLE from None
    except OpenAIKeyUnreadable:
        raise KEY_UNREADABLE from None


async def aprofile_api_credentials(*, profile: Profile) -> OpenAICredentials:
    """profile_api_credentials from async code. A user's own key costs no thread hop; the team key
    lookup runs where the async ORM would, and gives its connection back at once (as
    auth.authenticate does: a stream stays open for minutes and must not hold one meanwhile)."""
    if profile.openai_api_key:
        return profile_api_credentials(profile=profile)

    def lookup() -> OpenAICredentials:
        try:
            return profile_api_credentials(profile=profile)
        finally:
            for connection in connections.all(initialized_only=True):
                if not connection.in_atomic_block:
                    connection.close_if_unusable_or_obsolete()

    return await sync_to_async(lookup)()


def profile_key_in_use(*, profile: Profile) -> KeyInUse:
    """Whose key the user's calls go out with: "own", "team" or "none" (never the key)."""
    if profile.openai_api_key:
        return "own"  # an unreadable one too: it still wins, and its owner is asked to re-enter it
    return "team" if team_key_for(user_id=profile.user_id) is not None else "none"


# --- the team key -------------------------------------------------------------------------------


def team_key_get() -> TeamKey:
    """The one TeamKey row (created empty on first use)."""
    team_key, _ = TeamKey.objects.get_or_create(pk=TeamKey.SINGLETON_ID)
    return team_key


def team_key_for(*, user_id: int) -> TeamKey | None:
    """The team key if one is stored and this user may use it (everyone may, or they are in one of
    its groups); else None. One query, the group membership included."""
    in_a_group = Exists(TeamKey.groups.through.objects.filter(teamkey_id=OuterRef("pk"), group__user=user_id))
    return (
        TeamKey.objects.filter(pk=TeamKey.SINGLETON_ID)
        .exclude(openai_api_key="")
        .filter(Q(available_to_everyone=True) | in_a_group)
        .only("openai_api_key", "openai_organization_id", "openai_base_url")
        .first()
    )


def team_key_credentials(*, team_key: TeamKey) -> OpenAICredentials:
    """Raises TeamKeyUnreadable if the ring no longer opens it."""
    key = team_key.openai_api_key
    if isinstance(key, UnreadableSecret):
        raise TeamKeyUnreadable()
    return OpenAICredentials(
        api_key=key,
        organization=team_key.openai_organization_id or None,
        base_url=team_key.openai_base_url or None,
        source="team",
    )


def team_key_set_openai_key(*, team_key: TeamKey, api_key: str) -> TeamKey:
    _store_openai_key(team_key, api_key.strip())
    return team_key


def team_key_clear_openai_key(*, team_key: TeamKey) -> TeamKey:
    _store_openai_key(team_key, "")
    return team_key


def team_key_set_base_url(*, team_key: TeamKey, base_url: str | None) -> TeamKey:
    """As profile_set_base_url: checked by the SSRF guard; raises host_guard.HostRefused."""
    base_url = (base_url or "").strip()
    team_key.openai_base_url = host_guard.check_base_url(base_url) if base_url else ""
    team_key.save(update_fields=["openai_base_url", "updated_at"])
    return team_key


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
