"""What every upstream call used and cost, the prices it was costed with, and monthly budgets.

A UsageRecord is written once, when its call has ended (recording.py), and never changed: its cost
is worked out with the prices of that day and stored, so a later price change does not rewrite
history. Nothing in the app updates or deletes one (the admin shows them read-only); deleting a user
deletes their records with them.
"""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

# Where a call came from (UsageRecord.entry_point; the `key` of GET /api/usage/?group_by=entry_point).
CHAT_API = "chat_api"  # POST /api/chat/openai
V1 = "v1"  # POST /v1/chat/completions, streamed or not
CONVERSATION = "conversation"  # the conversation endpoint (its message is linked)
ENTRY_POINTS = ((CHAT_API, "/api/chat/openai"), (V1, "/v1/chat/completions"), (CONVERSATION, "conversation"))

MODEL_MAX_LENGTH = 200  # longer model names (a /v1 caller may send anything) are cut to this


class AppendOnly(Exception):
    """A usage record was about to be changed or deleted through the app."""


# What deleting a token or a message may do to its records: forget the link (SET_NULL).
_CLEARABLE_LINKS = frozenset({"api_token", "api_token_id", "message", "message_id"})


class UsageRecordQuerySet(models.QuerySet["UsageRecord"]):
    def update(self, **kwargs: Any) -> int:
        if kwargs and set(kwargs) <= _CLEARABLE_LINKS and all(value is None for value in kwargs.values()):
            return super().update(**kwargs)
        raise AppendOnly("usage records are never changed")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AppendOnly("usage records are never deleted through the app")


class UsageRecord(models.Model):
    """One upstream call: who made it and how, what it used, how it ended, what it cost."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_records")
    entry_point = models.CharField(max_length=16, choices=ENTRY_POINTS)
    # The API token that authenticated the call (None: a browser session, or a token revoked since).
    api_token = models.ForeignKey(
        "profiles.ApiToken", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    model = models.CharField(max_length=MODEL_MAX_LENGTH)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)  # reasoning tokens included, as OpenAI counts
    cached_tokens = models.PositiveIntegerField(default=0)  # of the prompt tokens
    reasoning_tokens = models.PositiveIntegerField(default=0)  # of the completion tokens
    # True: the upstream sent no usage figures (the call was cut off): the tokens are our estimate.
    estimated = models.BooleanField(default=False)
    # How the call ended (upstream/record.py): complete, stopped, client_gone, upstream_error.
    outcome = models.CharField(max_length=16)
    key_source = models.CharField(max_length=8, blank=True, default="")  # "own" or "team": whose key paid
    started_at = models.DateTimeField(default=timezone.now)
    time_to_first_token = models.FloatField(null=True, blank=True)  # seconds to the first relayed bytes
    duration = models.FloatField(null=True, blank=True)  # seconds, open to close
    cost = models.DecimalField(max_digits=16, decimal_places=10, null=True, blank=True)  # USD; None: no price
    message = models.ForeignKey(
        "conversations.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    objects = UsageRecordQuerySet.as_manager()

    class Meta:
        ordering = ["-started_at"]
        # Every read is one user's records over a period (the usage page, the API, budgets); the
        # admin's totals scan a period for everyone.
        indexes = [
            models.Index(fields=["user", "started_at"], name="usage_user_started"),
            models.Index(fields=["started_at"], name="usage_started"),
        ]

    def __str__(self) -> str:
        return f"{self.model} by user {self.user_id} at {self.started_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnly("usage records are never changed")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> tuple[int, dict[str, int]]:
        raise AppendOnly("usage records are never deleted through the app")


class Price(models.Model):
    """A model's list price from a date on, per million tokens in USD.

    `model_pattern` is a regular expression that must match the whole model name (re.fullmatch):
    `gpt-4o-mini(-2024-07-18)?` prices both names and nothing else. Of the prices whose pattern
    matches, the one with the latest `effective_from` not after the call's day applies; on the same
    date the longer pattern (the more specific) wins. No match: the call gets no cost.
    """

    model_pattern = models.CharField(
        max_length=200, help_text="A regular expression matched against the whole model name."
    )
    input_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    cached_input_per_million = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Cached prompt tokens; empty: priced as input.",
    )
    output_per_million = models.DecimalField(max_digits=12, decimal_places=6)
    effective_from = models.DateField(help_text="Calls from this day (UTC) on use this price.")
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["model_pattern", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["model_pattern", "effective_from"], name="usage_price_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.model_pattern} from {self.effective_from}"


class Budget(models.Model):
    """A monthly cost ceiling for one user, in USD: set by staff, by the user, or both (the lower
    wins). No row, or both empty: no ceiling."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_budget"
    )
    staff_limit = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="Set by staff (USD per month)."
    )
    user_limit = models.DecimalField(
        max_digits=10, decimal_places=2, null=True, blank=True, help_text="Set by the user (USD per month)."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "monthly budget"

    def __str__(self) -> str:
        return f"Budget of {self.user}"

    @property
    def limit(self) -> Decimal | None:
        """The ceiling that applies: the lower of the two, or None."""
        limits = [value for value in (self.staff_limit, self.user_limit) if value is not None]
        return min(limits) if limits else None
