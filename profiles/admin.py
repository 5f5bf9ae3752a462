"""Profiles in the admin: the key is write-only here too.

No admin form has the model's `openai_api_key` field, so no page renders it (not even encrypted):
a new key comes in through a password input that never renders back, and every write goes through
the services. Profiles also appear inline on the user admin.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import formats, timezone

from . import team_key_admin  # noqa: F401  (registers the team key's admin)
from .forms import new_key_field, organization_field
from .login_forms import AdminLoginForm
from .models import ApiToken, Profile
from .services import profile_clear_openai_key, profile_set_openai_key, profile_set_organization


class ProfileAdminForm(forms.ModelForm):
    new_openai_api_key = new_key_field(
        label="New OpenAI API key",
        help_text="Write-only: leave empty to keep the current key. Stored keys are never shown.",
    )
    clear_openai_api_key = forms.BooleanField(label="Clear the stored OpenAI API key", required=False)
    openai_organization_id = organization_field(label="OpenAI organization ID")

    class Meta:
        model = Profile
        fields = ["openai_organization_id"]

    def clean(self) -> dict[str, Any]:
        super().clean()  # returns self.cleaned_data, typed `| None` (an override may return None)
        cleaned = self.cleaned_data
        if cleaned.get("new_openai_api_key") and cleaned.get("clear_openai_api_key"):
            raise forms.ValidationError("Either enter a new key or clear the stored one, not both.")
        return cleaned

    def save(self, commit: bool = True) -> Profile:
        # The admin calls save(commit=False) and then ProfileAdmin.save_model; inline formsets call
        # save(commit=True). Either way the writes happen once, in apply().
        # Django itself sets save_m2m per instance (in save(commit=False)); the stubs call it a method.
        self.save_m2m = lambda: None  # type: ignore[method-assign]
        if commit:
            self.apply()
        return self.instance

    def apply(self) -> Profile:
        profile = self.instance
        if profile.pk is None:  # a user older than the profile signal, saved from the user admin
            profile.save()
        data = self.cleaned_data
        if "openai_organization_id" in self.changed_data:
            profile_set_organization(profile=profile, organization_id=data.get("openai_organization_id"))
        if data.get("new_openai_api_key"):
            profile_set_openai_key(profile=profile, api_key=data["new_openai_api_key"])
        elif data.get("clear_openai_api_key"):
            profile_clear_openai_key(profile=profile)
        return profile


class HasKeyFilter(admin.SimpleListFilter):
    title = "OpenAI key"
    parameter_name = "has_key"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Set"), ("no", "Not set")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Profile]) -> QuerySet[Profile]:
        # An empty column means no key; any stored value is a (non-empty) ciphertext.
        if self.value() == "yes":
            return queryset.exclude(openai_api_key="")
        if self.value() == "no":
            return queryset.filter(openai_api_key="")
        return queryset


@admin.display(boolean=True, description="Has key")
def has_key(profile: Profile) -> bool:
    return profile.has_openai_api_key


@admin.display(description="Key hint")
def key_hint(profile: Profile) -> str | None:
    return profile.openai_api_key_hint


@admin.display(description="Organization", ordering="openai_organization_id")
def organization(profile: Profile) -> str | None:
    return profile.openai_organization_id or None


@admin.display(description="Key last changed")
def key_updated(profile: Profile) -> str | None:
    changed = profile.openai_api_key_updated_at
    # template_localtime: what the admin's own date columns use; missing from django-stubs.
    return formats.localize(timezone.template_localtime(changed)) if changed else None  # type: ignore[attr-defined]


# The admin takes these callables (shown under their admin.display description) in readonly_fields,
# fields and fieldsets, and list_display callables may return None (shown as "-"). django-stubs allows
# only field names in the first three and str | bool in the last: the `type: ignore`s below.
READONLY = (key_hint, key_updated, "updated_at")
FORM_FIELDS = ("openai_organization_id", "new_openai_api_key", "clear_openai_api_key")


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    form = ProfileAdminForm
    list_display = ("user", has_key, key_hint, organization, "updated_at")  # type: ignore[assignment]
    list_select_related = ("user",)
    list_filter = (HasKeyFilter,)
    search_fields = ("user__username", "user__email")
    readonly_fields = ("user", *READONLY)  # type: ignore[assignment]
    fieldsets = (
        (None, {"fields": ("user", "updated_at")}),
        ("OpenAI", {"fields": (*READONLY[:2], *FORM_FIELDS)}),  # type: ignore[typeddict-item]
    )
    actions = ["clear_openai_key"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # every user gets a profile automatically

    def has_delete_permission(self, request: HttpRequest, obj: Profile | None = None) -> bool:
        return False  # it lives and dies with its user

    def save_model(self, request: HttpRequest, obj: Profile, form: ProfileAdminForm, change: bool) -> None:
        form.apply()

    @admin.action(description="Clear OpenAI key of selected profiles", permissions=["change"])
    def clear_openai_key(self, request: HttpRequest, queryset: QuerySet[Profile]) -> None:
        cleared = 0
        for profile in queryset.exclude(openai_api_key=""):
            profile_clear_openai_key(profile=profile)
            cleared += 1
        self.message_user(request, f"Cleared the OpenAI key of {cleared} profile(s).", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """API tokens: listed, renamed, given an expiry, revoked (deleted). Never added here: a token's text
    is shown once, to whoever creates it (settings page, API, create_api_token), and no admin page
    should hold one. The digest is on no page either: useless as a token, and nothing to look at."""

    list_display = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "name", "prefix")
    fields = ("user", "name", "prefix", "created_at", "last_used_at", "expires_at")
    readonly_fields = ("user", "prefix", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


class ProfileInline(admin.StackedInline):
    model = Profile
    form = ProfileAdminForm
    can_delete = False
    max_num = 1
    verbose_name_plural = "Profile"
    fields = (*READONLY[:2], *FORM_FIELDS)  # type: ignore[assignment]
    readonly_fields = READONLY[:2]  # type: ignore[assignment]


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserWithProfileAdmin(UserAdmin):
    inlines = [ProfileInline]

    def get_inlines(
        self, request: HttpRequest, obj: Any = None
    ) -> list[type[admin.options.InlineModelAdmin]]:
        # On the add page the new user's profile comes from the signal; an inline would make a second.
        return self.inlines if obj is not None else []


# The admin's login page is throttled as the login page is (failed logins per client address).
admin.site.login_form = AdminLoginForm
