"""API tokens: issued, checked and revoked here. Stored only as their SHA-256 digest (models.ApiToken).

A token is "bk-" and 40 URL-safe characters (240 random bits). Its text is returned once, by
token_create(); the database keeps the digest and the first characters (`prefix`), enough for its
owner to tell tokens apart and useless to anyone else. A plain fast hash is enough for a random
secret this long (nothing to guess; salts and key stretching defend guessable passwords), and it
keeps the lookup one indexed equality query (token_query.py).
"""

import hashlib
import secrets
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import ApiToken
from .token_query import TokenMatch, token_lookup

TOKEN_PREFIX = "bk-"
TOKEN_RANDOM_BYTES = 30  # 240 bits: 40 URL-safe characters
PREFIX_LENGTH = 10  # "bk-" and 7 random characters (42 of the 240 bits): shown, never enough to use
DEFAULT_NAME = "API token"
NAME_MAX_LENGTH = 100  # ApiToken.name
MAX_DAYS = 3650  # the longest expiry offered: ten years

# last_used_at is written at most once a minute (60 s) per token. A write on every request would more
# than double the database time of the token check (the UPDATE costs ~1.5x the whole lookup on SQLite,
# measured in-process: ~1.2 ms against ~0.8 ms on a busy test machine) and, on SQLite, queue every
# request behind the one write lock, for a time people read to the minute at best.
LAST_USED_RESOLUTION = timedelta(seconds=60)

INVALID_MESSAGE = "Invalid or revoked API token."
EXPIRED_MESSAGE = "Expired API token: create a new one on the settings page."


class TokenRefused(Exception):
    """The token is unknown, revoked or expired, or its user is deactivated. `message` says which,
    without telling an unknown token from a revoked one or a deactivated user's."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def token_digest(raw: str) -> str:
    """Hex SHA-256 of the whole token, as stored in ApiToken.digest."""
    # surrogatepass: any str hashes (a header Django decoded as latin-1 never has surrogates anyway).
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def token_create(
    *, user: AbstractBaseUser, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """A new token for `user`: the saved row and the token's text, which exists nowhere else."""
    text = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_RANDOM_BYTES)
    token = ApiToken.objects.create(
        user_id=user.pk,
        name=name.strip() or DEFAULT_NAME,
        prefix=text[:PREFIX_LENGTH],
        digest=token_digest(text),
        expires_at=expires_at,
    )
    return token, text


def token_expiry(*, days: int | None, now: datetime | None = None) -> datetime | None:
    """The expiry of a token that lasts `days` from now (None: never)."""
    return None if days is None else (now or timezone.now()) + timedelta(days=days)


def token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """`user`'s tokens, newest first."""
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-id")


def token_revoke(*, user: AbstractBaseUser, token_id: int) -> bool:
    """Delete one of `user`'s tokens. False if they have none with that id (someone else's included)."""
    deleted, _ = ApiToken.objects.filter(user_id=user.pk, pk=token_id).delete()
    return deleted > 0


def tokens_revoke_all(*, user: AbstractBaseUser) -> int:
    """Delete all of `user`'s tokens; how many there were."""
    deleted, _ = ApiToken.objects.filter(user_id=user.pk).delete()
    return deleted


def token_authenticate(*, token: str) -> TokenMatch:
    """The caller behind `token` (user and profile, from one query), or TokenRefused.

    Sync: run it where the ORM would run (sync_to_async). Records last_used_at when the stored one
    is older than LAST_USED_RESOLUTION, so most requests make no write.
    """
    match = token_lookup(token_digest(token))
    if match is None or not match.user.is_active:
        raise TokenRefused(INVALID_MESSAGE)
    now = timezone.now()
    if match.expires_at is not None and match.expires_at <= now:
        raise TokenRefused(EXPIRED_MESSAGE)
    if match.last_used_at is None or now - match.last_used_at >= LAST_USED_RESOLUTION:
        _token_touch(token_id=match.token_id, now=now)
    return match


def _token_touch(*, token_id: int, now: datetime) -> None:
    # Conditional, so concurrent first requests of a minute write the row once between them.
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
    ApiToken.objects.filter(stale, pk=token_id).update(last_used_at=now)
