"""Input and output shapes of the REST API (profiles/api.py). Writes go through services.py."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# The settings page's rules, so a key the page refuses is refused here too (Django's
# ValidationError from a validator becomes a DRF field error).
from .forms import KEY_MAX_LENGTH, KEY_MIN_LENGTH, validate_openai_key_format, validate_organization_id
from .models import BASE_URL_MAX_LENGTH, ApiToken, Profile
from .services import profile_base_url, profile_key_in_use
from .tokens import DEFAULT_NAME, MAX_DAYS, NAME_MAX_LENGTH


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
    openai_base_url = serializers.SerializerMethodField(
        help_text="The OpenAI-compatible server your own key goes to; null: the server's default "
        "(also whenever this server does not allow your own, USER_BASE_URL_ENABLED)."
    )
    key_source = serializers.SerializerMethodField(
        help_text='Whose key your calls use: "own" (yours), "team" (the team key staff set up, '
        'used when you have none of your own and may use it) or "none". Never the key itself.'
    )

    class Meta:
        model = Profile
        fields = [
            "openai_api_key_set",
            "openai_api_key_hint",
            "openai_organization_id",
            "openai_base_url",
            "key_source",
            "updated_at",
        ]
        read_only_fields = fields

    def get_openai_organization_id(self, profile: Profile) -> str | None:
        return profile.openai_organization_id or None

    def get_openai_base_url(self, profile: Profile) -> str | None:
        return profile_base_url(profile=profile)

    @extend_schema_field(serializers.ChoiceField(choices=["own", "team", "none"]))
    def get_key_source(self, profile: Profile) -> str:
        return profile_key_in_use(profile=profile)


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
    openai_base_url = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=BASE_URL_MAX_LENGTH,
        help_text="An OpenAI-compatible server for your own key (https; its addresses must be public), "
        '"" or null for the server\'s default. Only where the server allows it (USER_BASE_URL_ENABLED).',
    )

    def validate_openai_api_key(self, value: str | None) -> str:
        return value or ""

    def validate_openai_organization_id(self, value: str | None) -> str:
        return value or ""

    def validate_openai_base_url(self, value: str | None) -> str:
        if not settings.USER_BASE_URL_ENABLED:
            raise serializers.ValidationError(
                "This server does not let users choose their own base URL (USER_BASE_URL_ENABLED is off): "
                "your key goes to the server's default."
            )
        return value or ""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A misspelt or read-only field must not be silently ignored: the caller would think it was saved.
        unknown = (
            sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        )
        if unknown:
            raise serializers.ValidationError(
                {
                    _shortened(name): "Unknown field: only openai_api_key, openai_organization_id "
                    "and openai_base_url can be changed."
                    for name in unknown
                }
            )
        return attrs


def _shortened(name: str) -> str:
    # A "field name" as long as a key may be one (a JSON body sent as a form arrives as one long
    # name): an error never repeats a key, so long names are cut to a recognisable start.
    return name if len(name) < KEY_MIN_LENGTH else f"{name[:12]}... ({len(name)} characters)"


# --- API tokens (POST/DELETE /api/token/, /api/tokens/) ----------------------------------------


def token_name_field(*, required: bool) -> StrictCharField:
    return StrictCharField(
        required=required,
        allow_blank=not required,
        max_length=NAME_MAX_LENGTH,
        help_text='What the token is for ("laptop", "CI"): shown in your token list.'
        + ("" if required else f' Default: "{DEFAULT_NAME}".'),
    )


def expires_in_days_field() -> serializers.IntegerField:
    return serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        max_value=MAX_DAYS,
        help_text="The token stops working this many days from now. Absent or null: it never expires.",
    )


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField()
    password = StrictCharField(trim_whitespace=False, style={"input_type": "password"})
    name = token_name_field(required=False)
    expires_in_days = expires_in_days_field()


class TokenCreateSerializer(serializers.Serializer):
    name = token_name_field(required=True)
    expires_in_days = expires_in_days_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # A misspelt "expires_in_days" must not silently make a token that never expires.
        unknown = (
            sorted(set(self.initial_data) - set(self.fields)) if isinstance(self.initial_data, dict) else []
        )
        if unknown:
            raise serializers.ValidationError(
                {_shortened(name): "Unknown field: only name and expires_in_days." for name in unknown}
            )
        return attrs


class TokenOutputSerializer(serializers.ModelSerializer):
    """A token as listed: never its text, never its digest."""

    prefix = serializers.CharField(
        read_only=True, help_text="The token's first characters, to tell tokens apart."
    )
    last_used_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text="Recorded at most once a minute; null: never used."
    )
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null: never expires.")

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at"]
        read_only_fields = fields


class TokenCreatedSerializer(serializers.ModelSerializer):
    """A token just made, with its text: the only response that ever carries it."""

    token = serializers.SerializerMethodField(
        help_text="The whole token, shown this once (only its digest is stored). Send it as "
        "'Authorization: Bearer <token>' (or 'Token <token>'); it is the OpenAI SDK's api_key for /v1."
    )
    expires_at = serializers.DateTimeField(read_only=True, allow_null=True, help_text="null: never expires.")

    class Meta:
        model = ApiToken
        fields = ["token", "id", "name", "prefix", "created_at", "expires_at"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        text: str = self.context["token_text"]
        return text


class ErrorSerializer(serializers.Serializer):
    """The one JSON error shape (chat/errors.py), for the schema."""

    message = serializers.CharField()
    code = serializers.CharField()
    settings_url = serializers.URLField()
    # The error body's "fields" key. DRF's metaclass takes declared fields out of the class, so this
    # does not replace Serializer.fields, as the stubs take it to.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.CharField(),
        required=False,
        help_text="Validation errors only: field -> first message.",
    )
