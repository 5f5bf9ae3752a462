"""Input and output shapes of the REST API (profiles/api.py). Writes go through services.py."""

import re
from typing import Any

from rest_framework import serializers

from .models import Profile

# Keys and organization IDs go into HTTP headers: printable ASCII, no spaces. The rule is loose on
# purpose (OPENAI_BASE_URL may point at an OpenAI-compatible server with its own key format); it
# catches pasted sentences, quotes, line breaks and truncated copies, not every typo.
_HEADER_TOKEN = re.compile(r"[\x21-\x7e]+")
MIN_KEY_LENGTH = 20
MAX_KEY_LENGTH = 512


class StrictCharField(serializers.CharField):
    """A CharField that takes only JSON strings (DRF's would turn 123 or 1.5 into "123")."""

    default_error_messages = {"invalid": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class ProfileOutputSerializer(serializers.ModelSerializer):
    openai_api_key_set = serializers.BooleanField(source="has_openai_api_key")
    openai_api_key_hint = serializers.CharField(
        allow_null=True, help_text="'sk-...abcd': enough to recognise the stored key, never to use it."
    )
    openai_organization_id = serializers.SerializerMethodField()

    class Meta:
        model = Profile
        fields = ["openai_api_key_set", "openai_api_key_hint", "openai_organization_id", "updated_at"]
        read_only_fields = fields

    def get_openai_organization_id(self, profile: Profile) -> str | None:
        return profile.openai_organization_id or None


class ProfileUpdateSerializer(serializers.Serializer):
    openai_api_key = StrictCharField(
        required=False, allow_null=True, allow_blank=True, write_only=True, max_length=MAX_KEY_LENGTH,
        help_text='Write-only: stored encrypted and never returned. "" or null removes the stored key.',
    )
    openai_organization_id = StrictCharField(
        required=False, allow_null=True, allow_blank=True,
        max_length=Profile._meta.get_field("openai_organization_id").max_length,
        help_text='Sent to OpenAI as the OpenAI-Organization header; "" or null removes it.',
    )

    def validate_openai_api_key(self, value: str | None) -> str:
        if not value:
            return ""
        if not _HEADER_TOKEN.fullmatch(value):
            raise serializers.ValidationError(
                "This does not look like an API key: it contains spaces or characters a key never has."
            )
        if len(value) < MIN_KEY_LENGTH:
            raise serializers.ValidationError(
                f"This does not look like an API key: it is too short (keys have {MIN_KEY_LENGTH}+ characters)."
            )
        return value

    def validate_openai_organization_id(self, value: str | None) -> str:
        if value and not _HEADER_TOKEN.fullmatch(value):
            raise serializers.ValidationError(
                "This does not look like an organization ID (e.g. 'org-...'): it contains spaces or "
                "characters an ID never has."
            )
        return value or ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A misspelt or read-only field must not be silently ignored: the caller would think it was saved.
        unknown = sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        if unknown:
            raise serializers.ValidationError({_shortened(name): "Unknown field: only openai_api_key and "
                                               "openai_organization_id can be changed." for name in unknown})
        return attrs


def _shortened(name: str) -> str:
    # A "field name" as long as a key may be one (a JSON body sent as a form arrives as one long
    # name): an error never repeats a key, so long names are cut to a recognisable start.
    return name if len(name) < MIN_KEY_LENGTH else f"{name[:12]}... ({len(name)} characters)"


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField()
    password = StrictCharField(trim_whitespace=False, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as 'Authorization: Bearer <token>' (or 'Token <token>').")


class ErrorSerializer(serializers.Serializer):
    """The one JSON error shape (chat/errors.py), for the schema."""

    message = serializers.CharField()
    code = serializers.CharField()
    settings_url = serializers.URLField()
    fields = serializers.DictField(child=serializers.CharField(), required=False,
                                   help_text="Validation errors only: field -> first message.")
