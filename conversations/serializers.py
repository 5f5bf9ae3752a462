"""Input and output shapes of the conversations API (api.py). Writes go through services.py."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from profiles.serializers import StrictCharField

from .export import CONVERSATION_FIELDS
from .models import Conversation, Message
from .selectors import BranchMessage

TITLE_MAX = Conversation._meta.get_field("title").max_length
MODEL_MAX = Conversation._meta.get_field("model").max_length


class _RefusesUnknownFields(serializers.Serializer):
    """A misspelt field must not be silently ignored: the caller would think it was saved."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        data = self.initial_data
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, dict) else []
        if unknown:
            allowed = ", ".join(self.fields)
            raise serializers.ValidationError(
                {name[:40]: f"Unknown field: only {allowed}." for name in unknown}
            )
        return attrs


def _within_message_max_chars(value: str) -> None:
    # Read per request (not a max_length fixed at import): MESSAGE_MAX_CHARS is the one bound.
    if len(value) > settings.MESSAGE_MAX_CHARS:
        raise serializers.ValidationError(
            f"At most {settings.MESSAGE_MAX_CHARS:,} characters (MESSAGE_MAX_CHARS)."
        )


def _system_prompt_field() -> StrictCharField:
    return StrictCharField(
        required=False,
        allow_blank=True,
        validators=[_within_message_max_chars],
        trim_whitespace=False,
        help_text="Sent first, as the system message, with every question of this conversation.",
    )


class ConversationCreateSerializer(_RefusesUnknownFields):
    title = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=TITLE_MAX,
        help_text="Default: empty; the first question's first line once it is asked.",
    )
    model = StrictCharField(required=False, allow_blank=True, max_length=MODEL_MAX)
    system_prompt = _system_prompt_field()


class ConversationUpdateSerializer(_RefusesUnknownFields):
    title = StrictCharField(required=False, allow_blank=True, max_length=TITLE_MAX)
    pinned = serializers.BooleanField(required=False)
    archived = serializers.BooleanField(
        required=False, help_text="Archived ones are listed with ?archived=true."
    )
    model = StrictCharField(required=False, allow_blank=True, max_length=MODEL_MAX)
    system_prompt = _system_prompt_field()
    current_leaf_id = serializers.UUIDField(
        required=False,
        help_text="Switch branch: any message of this conversation. The branch shown runs from the "
        "root through it down to its newest descendant, which becomes the current leaf.",
    )


class ConversationOutputSerializer(serializers.ModelSerializer):
    updated_at = serializers.DateTimeField(help_text="The last activity: when a message was last added.")

    class Meta:
        model = Conversation
        fields = ["id", "title", "model", "pinned", "archived", "created_at", "updated_at"]
        read_only_fields = fields


class MessageOutputSerializer(serializers.ModelSerializer):
    """A saved message (also the `done` event's message in the streaming endpoint)."""

    parent_id = serializers.UUIDField(allow_null=True, help_text="The message it follows; null: a root.")
    status = serializers.ChoiceField(
        choices=Message.Status.choices,
        help_text="streaming (being written as it arrives), complete, stopped (Stop pressed: the partial "
        "answer is kept), interrupted (the upstream failed or the client went away: partial answer "
        "kept) or error (no answer; see error_code).",
    )

    class Meta:
        model = Message
        fields = [
            "id",
            "parent_id",
            "role",
            "content",
            "model",
            "status",
            "finish_reason",
            "error_code",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class BranchMessageSerializer(MessageOutputSerializer):
    """A message of the branch shown, with its siblings (context["siblings"]: message id -> ids)."""

    sibling_ids = serializers.SerializerMethodField(
        help_text="Every message under the same parent, this one included, oldest first: the "
        "alternatives (edited questions, regenerated answers) to switch to with PATCH current_leaf_id."
    )

    class Meta(MessageOutputSerializer.Meta):
        fields = [*MessageOutputSerializer.Meta.fields, "sibling_ids"]
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_sibling_ids(self, message: Message) -> list[str]:
        return [str(sibling) for sibling in self.context["siblings"][message.id]]


class ConversationDetailSerializer(ConversationOutputSerializer):
    current_leaf_id = serializers.UUIDField(
        allow_null=True, help_text="The last message of the branch shown; null: no messages yet."
    )
    messages = serializers.SerializerMethodField(
        help_text="The branch shown: its root down to current_leaf_id, oldest first."
    )

    class Meta(ConversationOutputSerializer.Meta):
        fields = [
            *ConversationOutputSerializer.Meta.fields,
            "system_prompt",
            "parameters",
            "current_leaf_id",
            "messages",
        ]
        read_only_fields = fields

    @extend_schema_field(BranchMessageSerializer(many=True))
    def get_messages(self, conversation: Conversation) -> list[dict[str, Any]]:
        branch: list[BranchMessage] = self.context["branch"]
        siblings = {item.message.id: item.sibling_ids for item in branch}
        messages = [item.message for item in branch]
        return list(BranchMessageSerializer(messages, many=True, context={"siblings": siblings}).data)


# --- Export and import -----------------------------------------------------------------------------


class ExportMessageSerializer(MessageOutputSerializer):
    pass


class ExportConversationSerializer(serializers.ModelSerializer):
    current_leaf_id = serializers.UUIDField(allow_null=True)
    messages = ExportMessageSerializer(many=True, help_text="Every message of every branch, oldest first.")

    class Meta:
        model = Conversation
        fields = [*CONVERSATION_FIELDS, "messages"]  # what export.py writes: the schema describes it
        read_only_fields = fields


class ExportSerializer(serializers.Serializer):
    """For the schema: export.py builds the document directly (one pass over the rows)."""

    version = serializers.IntegerField(help_text="1: this shape.")
    exported_at = serializers.DateTimeField()
    conversations = ExportConversationSerializer(many=True)


class ImportUploadSerializer(serializers.Serializer):
    file = serializers.FileField(
        help_text="The export file: ours, ChatGPT's conversations.json or chatbot-ui's JSON export."
    )


class _ImportCountsSerializer(serializers.Serializer):
    conversations = serializers.IntegerField()
    messages = serializers.IntegerField()


class ImportResultSerializer(serializers.Serializer):
    imported = _ImportCountsSerializer()
    skipped = _ImportCountsSerializer(
        help_text="Already here (imported before, or our own export of this account), or with nothing "
        "to keep (ChatGPT's system and tool messages, empty messages)."
    )
