"""Forms for the settings page and the admin: the key is write-only everywhere.

No form here has the model's `openai_api_key` as a field, so Django never renders its value; a new key
comes in through a separate password input that never renders back (`render_value=False`).
"""

import re
from typing import Any, TypedDict, Unpack

from django import forms
from django.core.exceptions import ValidationError

from upstream import host_guard

from .models import BASE_URL_MAX_LENGTH

KEY_PREFIX = "sk-"
KEY_MIN_LENGTH = 20
KEY_MAX_LENGTH = 500
_KEY_CHARS = re.compile(r"[A-Za-z0-9_\-]+")
_ORGANIZATION = re.compile(r"org-[A-Za-z0-9_\-]+")


def validate_openai_key_format(value: str) -> None:
    """Catch what is obviously not an OpenAI key (a pasted sentence, a half key) before storing it."""
    if any(char.isspace() for char in value):
        raise ValidationError(
            "An API key has no spaces or line breaks inside. Copy it again, in one piece.",
            code="key_whitespace",
        )
    if not value.startswith(KEY_PREFIX):
        raise ValidationError(
            "This does not look like an OpenAI API key: keys start with “sk-”. "
            "Create one at https://platform.openai.com/api-keys.",
            code="key_prefix",
        )
    if len(value) < KEY_MIN_LENGTH:
        raise ValidationError(
            "This key is too short to be an OpenAI API key. Copy it again, in full.", code="key_short"
        )
    if not _KEY_CHARS.fullmatch(value[len(KEY_PREFIX) :]):
        raise ValidationError(
            "An API key contains only letters, digits, “-” and “_”. Copy it again.", code="key_chars"
        )


def validate_organization_id(value: str) -> None:
    if value and not _ORGANIZATION.fullmatch(value):
        raise ValidationError(
            "An organization ID looks like “org-…”. Leave it empty to use your key's default organization.",
            code="organization_format",
        )


class _FieldText(TypedDict, total=False):
    """What the callers of new_key_field() and organization_field() choose: the field's words."""

    label: str
    help_text: str


def base_url_field(**kwargs: Unpack[_FieldText]) -> forms.CharField:
    return forms.CharField(
        required=False,
        strip=True,
        max_length=BASE_URL_MAX_LENGTH,
        widget=forms.URLInput(
            attrs={"placeholder": "https://…", "spellcheck": "false", "autocapitalize": "off"}
        ),
        **kwargs,
    )


def base_url_checked(value: str) -> str:
    """A base URL as stored ("" for the default), or a ValidationError saying which check of the
    SSRF guard it failed (the name is resolved: blocking)."""
    if not value:
        return ""
    try:
        return host_guard.check_base_url(value)
    except host_guard.HostRefused as refusal:
        raise ValidationError(refusal.message, code="base_url_refused") from None


def new_key_field(**kwargs: Unpack[_FieldText]) -> forms.CharField:
    return forms.CharField(
        required=False,
        strip=True,
        max_length=KEY_MAX_LENGTH,
        validators=[validate_openai_key_format],
        widget=forms.PasswordInput(
            render_value=False,
            attrs={
                "autocomplete": "off",
                "spellcheck": "false",
                "placeholder": "sk-…",
                "autocapitalize": "off",
            },
        ),
        **kwargs,
    )


def organization_field(**kwargs: Unpack[_FieldText]) -> forms.CharField:
    return forms.CharField(
        required=False,
        strip=True,
        max_length=64,
        validators=[validate_organization_id],
        widget=forms.TextInput(
            attrs={"placeholder": "org-…", "spellcheck": "false", "autocapitalize": "off"}
        ),
        **kwargs,
    )


class OpenAISettingsForm(forms.Form):
    api_key = new_key_field(
        label="New API key",
        help_text="Stored encrypted. It is never shown again: only its last four characters.",
    )
    organization_id = organization_field(
        label="Organization ID",
        help_text="Optional. Bills usage to this organization; leave empty for your key's default.",
    )
    check_key = forms.BooleanField(
        label="Check the key with OpenAI before saving",
        required=False,
        initial=True,  # ticked: a mistyped or revoked key is caught here, not at the first chat
        help_text="Asks OpenAI to list your models with this key. Nothing is saved if it does not work.",
    )

    base_url = base_url_field(
        label="Base URL",
        help_text="Optional. An OpenAI-compatible server for your key (OpenRouter, vLLM, a company "
        "proxy...): an https URL such as https://openrouter.ai/api/v1. Leave empty for the default.",
    )

    def __init__(self, *args: Any, has_stored_key: bool, allow_base_url: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.has_stored_key = has_stored_key
        self.base_url_changed = False  # set by the view once a new base URL is saved
        if not allow_base_url:  # USER_BASE_URL_ENABLED off: not offered at all
            del self.fields["base_url"]
        if has_stored_key:
            self.fields["api_key"].label = "Replace API key"
            self.fields["api_key"].help_text = (
                "Leave empty to keep the current key. " + self.fields["api_key"].help_text
            )

    def clean_base_url(self) -> str:
        return base_url_checked(self.cleaned_data["base_url"])

    def clean(self) -> dict[str, Any]:
        super().clean()  # returns self.cleaned_data, typed `| None` (an override may return None)
        cleaned = self.cleaned_data
        if cleaned.get("check_key") and not cleaned.get("api_key") and not self.has_stored_key:
            self.add_error("api_key", "Enter a key to check.")
        return cleaned
