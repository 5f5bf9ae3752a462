from django.conf import settings
from django.db import models
from django.utils import timezone

from .fields import EncryptedTextField, UnreadableSecret

BASE_URL_MAX_LENGTH = 500


class Profile(models.Model):
    """A user's OpenAI credentials. Created for every user (see signals.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # Encrypted at rest; "" when no key is stored. Read it through services, not directly in views.
    openai_api_key = EncryptedTextField(blank=True, default="")
    openai_organization_id = models.CharField(max_length=64, blank=True, default="")
    openai_api_key_updated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # An OpenAI-compatible server for the user's own key ("": the server's OPENAI_BASE_URL). Used only
    # while USER_BASE_URL_ENABLED is on; checked by upstream/host_guard.py on save and on every call.
    openai_base_url = models.CharField(max_length=BASE_URL_MAX_LENGTH, blank=True, default="")

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"Profile of {self.user}"

    @property
    def has_openai_api_key(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def openai_api_key_hint(self) -> str | None:
        return key_hint(self.openai_api_key)


def key_hint(key: str | UnreadableSecret) -> str | None:
    """`sk-...abcd`: enough to recognise a key, never enough to use it."""
    if not key:
        return None
    if isinstance(key, UnreadableSecret):
        return "unreadable"
    prefix = "sk-" if key.startswith("sk-") else ""
    return f"{prefix}...{key[-4:]}"


class ApiToken(models.Model):
    """An API token, stored only as its SHA-256 digest: a database dump holds nothing usable.

    The token is high-entropy random text (profiles/tokens.py), so a plain fast hash is enough
    (no salt, no key stretching: those defend guessable passwords) and the lookup stays one indexed
    equality query. `prefix` is its first characters, shown so its owner can tell tokens apart.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16)
    digest = models.CharField(max_length=64, unique=True)  # hex SHA-256 of the whole token
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def has_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()


class TeamKey(models.Model):
    """The server-wide OpenAI key staff may set for users who have none of their own (one row).

    Encrypted with the same key ring as users' keys (and rotated by rotate_profile_keys). Who may
    use it: everyone, or the members of `groups`. A user's own key always wins.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    openai_api_key = EncryptedTextField(blank=True, default="")  # "" when none is stored
    openai_organization_id = models.CharField(max_length=64, blank=True, default="")
    # "" : the server's OPENAI_BASE_URL; else checked like a user's (upstream/host_guard.py).
    openai_base_url = models.CharField(max_length=BASE_URL_MAX_LENGTH, blank=True, default="")
    available_to_everyone = models.BooleanField(
        default=False, help_text="Every user without a key of their own may use it."
    )
    groups = models.ManyToManyField(
        "auth.Group",
        blank=True,
        related_name="+",
        help_text="Otherwise only the members of these groups may use it.",
    )
    openai_api_key_updated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "team key"
        verbose_name_plural = "team key"

    def __str__(self) -> str:
        return "Team OpenAI key"

    @property
    def has_openai_api_key(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def openai_api_key_hint(self) -> str | None:
        return key_hint(self.openai_api_key)
