"""The team key in the admin: staff set the key users without one of their own may use, and who may.

As on the profile admin the key is write-only: no form has the model's `openai_api_key` field, a new
key comes in through a password input that never renders back, and only its hint is shown. The
base URL is checked by the SSRF guard (upstream/host_guard.py) as a user's is.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from upstream.host_guard import HostRefused

from .forms import base_url_checked, base_url_field, new_key_field, organization_field
from .models import TeamKey
from .services import team_key_clear_openai_key, team_key_set_base_url, team_key_set_openai_key


class TeamKeyAdminForm(forms.ModelForm):
    new_openai_api_key = new_key_field(
        label="New OpenAI API key",
        help_text="Write-only: leave empty to keep the current key. Stored keys are never shown.",
    )
    clear_openai_api_key = forms.BooleanField(label="Clear the stored team key", required=False)
    openai_organization_id = organization_field(label="OpenAI organization ID")
    openai_base_url = base_url_field(
        label="Base URL",
        help_text="Optional: an OpenAI-compatible server for the team key (https, public addresses only, "
        "unless its host is in UPSTREAM_ALLOWED_HOSTS). Empty: the server's OPENAI_BASE_URL.",
    )

    class Meta:
        model = TeamKey
        fields = ["openai_organization_id", "openai_base_url", "available_to_everyone", "groups"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # As stored: validating the form copies the new value onto the instance (construct_instance).
        self.stored_base_url = self.instance.openai_base_url

    def clean_openai_base_url(self) -> str:
        return base_url_checked(self.cleaned_data["openai_base_url"])

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        if cleaned.get("new_openai_api_key") and cleaned.get("clear_openai_api_key"):
            raise forms.ValidationError("Either enter a new key or clear the stored one, not both.")
        return cleaned

    def apply(self) -> TeamKey:
        """Every write (the admin's save_model): the plain fields and groups, then through the services
        the key and the base URL (checked again: its name may resolve differently now)."""
        team_key = self.instance
        data = self.cleaned_data
        team_key.openai_base_url = self.stored_base_url  # written below, by the service, if changed
        team_key.save()
        self.save_m2m()
        if data.get("new_openai_api_key"):
            team_key_set_openai_key(team_key=team_key, api_key=data["new_openai_api_key"])
        elif data.get("clear_openai_api_key"):
            team_key_clear_openai_key(team_key=team_key)
        if data["openai_base_url"] != team_key.openai_base_url:
            team_key_set_base_url(team_key=team_key, base_url=data["openai_base_url"])
        return team_key


@admin.display(boolean=True, description="Key stored")
def has_key(team_key: TeamKey) -> bool:
    return team_key.has_openai_api_key


@admin.display(description="Key hint")
def key_hint(team_key: TeamKey) -> str | None:
    return team_key.openai_api_key_hint


@admin.display(description="Who may use it")
def who(team_key: TeamKey) -> str:
    if team_key.available_to_everyone:
        return "Everyone without a key of their own"
    names = [group.name for group in team_key.groups.all()]
    return f"Members of {', '.join(names)}" if names else "Nobody yet (choose groups, or everyone)"


@admin.register(TeamKey)
class TeamKeyAdmin(admin.ModelAdmin):
    form = TeamKeyAdminForm
    list_display = ("__str__", has_key, key_hint, who, "openai_base_url", "updated_at")  # type: ignore[assignment]
    readonly_fields = (key_hint, "openai_api_key_updated_at", "updated_at")  # type: ignore[assignment]
    filter_horizontal = ("groups",)
    fieldsets = (
        (
            "Key",
            {
                "fields": (  # type: ignore[typeddict-item]  # a callable: see profiles/admin.py READONLY
                    key_hint,
                    "openai_api_key_updated_at",
                    "new_openai_api_key",
                    "clear_openai_api_key",
                    "openai_organization_id",
                    "openai_base_url",
                )
            },
        ),
        (
            "Who may use it",
            {
                "fields": ("available_to_everyone", "groups"),
                "description": "Used by users who have no key of their own; a user's own key always wins.",
            },
        ),
        (None, {"fields": ("updated_at",)}),
    )
    actions = ["clear_team_key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not TeamKey.objects.exists()  # one row: added once, then changed

    def has_delete_permission(self, request: HttpRequest, obj: TeamKey | None = None) -> bool:
        return False  # clear the key instead

    def save_model(self, request: HttpRequest, obj: TeamKey, form: TeamKeyAdminForm, change: bool) -> None:
        try:
            form.apply()
        except HostRefused as refusal:
            messages.error(request, f"The base URL was not saved. {refusal.message}")

    def save_related(self, request: HttpRequest, form: forms.ModelForm, formsets: Any, change: bool) -> None:
        pass  # the groups are saved in apply()

    @admin.action(description="Clear the team key", permissions=["change"])
    def clear_team_key(self, request: HttpRequest, queryset: QuerySet[TeamKey]) -> None:
        for team_key in queryset.exclude(openai_api_key=""):
            team_key_clear_openai_key(team_key=team_key)
        self.message_user(request, "The team key was cleared.", messages.SUCCESS)
