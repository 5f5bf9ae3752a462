"""The profile settings page: set, replace, check or remove the OpenAI key; set the organization ID.

A sync view: the optional key check is one upstream call, run with async_to_sync (under ASGI it runs on
the server's event loop, through the same pooled client as the chat API).
"""

from datetime import timedelta

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from upstream.credentials import OpenAICredentials

from .exceptions import OpenAIKeyProblem
from .forms import OpenAISettingsForm
from .models import Profile
from .services import (
    KeyCheck,
    openai_credentials_check,
    profile_clear_openai_key,
    profile_for,
    profile_openai_credentials,
    profile_set_openai_key,
    profile_set_organization,
)

CHECK_FAILURES = {
    "openai_api_key_invalid": "OpenAI did not accept this key: it is incorrect or has been revoked.",
    "openai_permission_denied": "OpenAI refused this key for this organization. "
    "Check the organization ID, or leave it empty.",
}


@login_required
def settings_page(request: HttpRequest) -> HttpResponse:
    profile = profile_for(user=request.user)
    form = OpenAISettingsForm(
        request.POST or None,
        has_stored_key=profile.has_openai_api_key,
        initial={"organization_id": profile.openai_organization_id},
    )
    if request.method == "POST" and form.is_valid() and _passes_check(form, profile):
        _save(request, form, profile)
        return redirect("profile-settings")
    changed = profile.openai_api_key_updated_at
    return render(
        request,
        "profiles/settings.html",
        {
            "form": form,
            "profile": profile,
            "changed_just_now": changed is not None and timezone.now() - changed < timedelta(minutes=1),
        },
    )


@login_required
@require_POST
def remove_key(request: HttpRequest) -> HttpResponse:
    profile = profile_for(user=request.user)
    if profile.has_openai_api_key:
        profile_clear_openai_key(profile=profile)
        messages.success(request, "Your OpenAI API key was removed.")
    else:
        messages.info(request, "There was no key to remove.")
    return redirect("profile-settings")


def _passes_check(form: OpenAISettingsForm, profile: Profile) -> bool:
    """Run the key check if it was asked for; on failure, say why on the form (nothing is saved)."""
    data = form.cleaned_data
    if not data["check_key"]:
        return True
    organization = data["organization_id"] or None
    if data["api_key"]:
        credentials = OpenAICredentials(api_key=data["api_key"], organization=organization)
    else:
        try:
            stored = profile_openai_credentials(profile=profile)
        except OpenAIKeyProblem:
            form.add_error("api_key", "Your stored key can no longer be read. Enter it again.")
            return False
        credentials = OpenAICredentials(api_key=stored.api_key, organization=organization)
    check: KeyCheck = async_to_sync(openai_credentials_check)(credentials=credentials)
    if not check.ok:
        reason = CHECK_FAILURES.get(check.code, check.message)
        form.add_error(None, f"{reason} Nothing was saved.")
        if check.code not in CHECK_FAILURES:
            form.add_error(None, "To save the key without checking it, untick “Check the key”.")
    return check.ok


def _save(request: HttpRequest, form: OpenAISettingsForm, profile: Profile) -> None:
    data = form.cleaned_data
    done: list[str] = []
    if data["api_key"]:
        verb = "replaced" if profile.has_openai_api_key else "saved"
        profile_set_openai_key(profile=profile, api_key=data["api_key"])
        accepted = " and OpenAI accepted it" if data["check_key"] else ""
        done.append(f"Your OpenAI API key was {verb} ({profile.openai_api_key_hint}){accepted}.")
    elif data["check_key"]:
        done.append(f"OpenAI accepted your key ({profile.openai_api_key_hint}).")
    if data["organization_id"] != profile.openai_organization_id:
        profile_set_organization(profile=profile, organization_id=data["organization_id"])
        done.append("Organization ID saved." if data["organization_id"] else "Organization ID removed.")
    if done:
        messages.success(request, " ".join(done))
    else:
        messages.info(request, "Nothing to save: enter a new key or change the organization ID.")
