from django.conf import settings
from django.db import models

from .fields import EncryptedTextField, UnreadableSecret


class Profile(models.Model):
    """A user's OpenAI credentials. Created for every user (see signals.py)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    # Encrypted at rest; "" when no key is stored. Read it through services, not directly in views.
    openai_api_key = EncryptedTextField(blank=True, default="")
    openai_organization_id = models.CharField(max_length=64, blank=True, default="")
    openai_api_key_updated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user__username"]

    def __str__(self) -> str:
        return f"Profile of {self.user}"

    @property
    def has_openai_api_key(self) -> bool:
        return bool(self.openai_api_key)

    @property
    def openai_api_key_hint(self) -> str | None:
        """`sk-...abcd`: enough to recognise a key, never enough to use it."""
        key = self.openai_api_key
        if not key:
            return None
        if isinstance(key, UnreadableSecret):
            return "unreadable"
        prefix = "sk-" if key.startswith("sk-") else ""
        return f"{prefix}...{key[-4:]}"
