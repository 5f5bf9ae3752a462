"""Conversations kept on the server: a tree of messages per conversation.

Editing a question or regenerating an answer adds a sibling under the same parent; nothing is
deleted. `current_leaf` is the message the conversation currently ends at; the branch shown is the
path from the root to it. One row per message (not the whole chat in one JSON value): a long chat
costs one small write per message, as Open WebUI learned when it had to move to a message table.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    system_prompt = models.TextField(blank=True, default="")
    parameters = models.JSONField(default=dict, blank=True)  # e.g. {"temperature": 0.7}
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    current_leaf = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Where an imported conversation came from ("<format>:<its id there>"): importing the same file
    # twice finds it and skips it. Empty for conversations made here.
    imported_from = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pinned", "-updated_at"]
        indexes = [models.Index(fields=["owner", "-updated_at"], name="conversation_owner_recent")]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "imported_from"],
                condition=~models.Q(imported_from=""),
                name="conversation_imported_once",
            )
        ]

    def __str__(self) -> str:
        return self.title or str(self.id)


class Message(models.Model):
    class Role(models.TextChoices):
        SYSTEM = "system"
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        STREAMING = "streaming"  # the answer is being written as it arrives
        COMPLETE = "complete"
        STOPPED = "stopped"  # the user pressed Stop: the partial answer is kept
        INTERRUPTED = "interrupted"  # the upstream failed or the client went away: partial answer kept
        ERROR = "error"  # no answer (the upstream refused)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    finish_reason = models.CharField(max_length=32, blank=True, default="")
    error_code = models.CharField(max_length=64, blank=True, default="")
    time_to_first_token = models.FloatField(null=True, blank=True)  # seconds
    duration = models.FloatField(null=True, blank=True)  # seconds
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["conversation", "created_at"], name="message_conversation_order")]

    def __str__(self) -> str:
        return f"{self.role} message {self.id}"
