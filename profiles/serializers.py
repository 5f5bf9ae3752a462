"""Input and output shapes of the REST API (profiles/api.py). Writes go through services.py."""

from typing import Any

from rest_framework import serializers

# The settings page's rules, so a key the page refuses is refused here too (Django's
# ValidationError from a validator becomes a DRF field error).
from .forms import KEY_MAX_LENGTH, KEY_MIN_LENGTH, validate_openai_key_format, validate_organization_id
from .models import Profile


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
    # Validators do not run on "" or null: both clear the field.
    openai_api_key = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        write_only=True,
        max_length=KEY_MAX_LENGTH,
        validators=[validate_openai_key_format],
        help_text='Write-only: stored encrypted and never returned. "" or null removes the stored key.',
    )
    openai_organization_id = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=Profile._meta.get_field("openai_organization_id").max_length,
        validators=[validate_organization_id],
        help_text='Sent to OpenAI as the OpenAI-Organization header ("org-..."); "" or null removes it.',
    )

    def validate_openai_api_key(self, value: str | None) -> str:
        return value or ""

    def validate_openai_organization_id(self, value: str | None) -> str:
        return value or ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A misspelt or read-only field must not be silently ignored: the caller would think it was saved.
        unknown = (
            sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        )
        if unknown:
            raise serializers.ValidationError(
                {
                    _shortened(name): "Unknown field: only openai_api_key and "
                    "openai_organization_id can be changed."
                    for name in unknown
                }
            )
        return attrs


def _shortened(name: str) -> str:
    # A "field name" as long as a key may be one (a JSON body sent as a form arrives as one long
    # name): an error never repeats a key, so long names are cut to a recognisable start.
    return name if len(name) < KEY_MIN_LENGTH else f"{name[:12]}... ({len(name)} characters)"


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField()
    password = StrictCharField(trim_whitespace=False, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="Send it as 'Authorization: Bearer <token>' (or 'Token <token>')."
    )


class ErrorSerializer(serializers.Serializer):
    """The one JSON error shape (chat/errors.py), for the schema."""

    message = serializers.CharField()
    code = serializers.CharField()
    settings_url = serializers.URLField()
    fields = serializers.DictField(
        child=serializers.CharField(),
        required=False,
        help_text="Validation errors only: field -> first message.",
    )
