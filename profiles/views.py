"""The profile settings page: set, replace, check or remove the OpenAI key; set the organization ID
and (where USER_BASE_URL_ENABLED) the base URL; see whose key is in use (yours, the team's, none).

A sync view: the optional key check is one upstream call, run with async_to_sync (under ASGI it runs on
the server's event loop, through the same pooled client as the chat API).
"""

from datetime import timedelta

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from core.http import AuthenticatedHttpRequest
from upstream.credentials import OpenAICredentials
from upstream.host_guard import HostRefused

from .exceptions import OpenAIKeyProblem
from .forms import OpenAISettingsForm
from .models import Profile
from .services import (
    KeyCheck,
    openai_credentials_check,
    profile_base_url,
    profile_clear_openai_key,
    profile_for,
    profile_key_in_use,
    profile_openai_credentials,
    profile_set_base_url,
    profile_set_openai_key,
    profile_set_organization,
)

CHECK_FAILURES = {
    "openai_api_key_invalid": "OpenAI did not accept this key: it is incorrect or has been revoked.",
    "openai_permission_denied": "OpenAI refused this key for this organization. "
    "Check the organization ID, or leave it empty.",
}


@login_required
def settings_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    profile = profile_for(user=request.user)
    form = OpenAISettingsForm(
        request.POST or None,
        has_stored_key=profile.has_openai_api_key,
        allow_base_url=settings.USER_BASE_URL_ENABLED,
        initial={"organization_id": profile.openai_organization_id, "base_url": profile.openai_base_url},
    )
    if (
        request.method == "POST"
        and form.is_valid()
        and _passes_check(form, profile)
        and _base_url_saved(form, profile)
    ):
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
            "key_in_use": profile_key_in_use(profile=profile),  # "own", "team" or "none"
        },
    )


@login_required
@require_POST
def remove_key(request: AuthenticatedHttpRequest) -> HttpResponse:
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
    # Checked where the key will go: the base URL in the form (already through the SSRF guard), or
    # the stored one.
    base_url = (data["base_url"] or None) if "base_url" in data else profile_base_url(profile=profile)
    if data["api_key"]:
        credentials = OpenAICredentials(api_key=data["api_key"], organization=organization, base_url=base_url)
    else:
        try:
            stored = profile_openai_credentials(profile=profile)
        except OpenAIKeyProblem:
            form.add_error("api_key", "Your stored key can no longer be read. Enter it again.")
            return False
        credentials = OpenAICredentials(api_key=stored.api_key, organization=organization, base_url=base_url)
    check: KeyCheck = async_to_sync(openai_credentials_check)(credentials=credentials)
    if not check.ok:
        reason = CHECK_FAILURES.get(check.code, check.message)
        form.add_error(None, f"{reason} Nothing was saved.")
        if check.code not in CHECK_FAILURES:
            form.add_error(None, "To save the key without checking it, untick “Check the key”.")
    return check.ok


def _base_url_saved(form: OpenAISettingsForm, profile: Profile) -> bool:
    """Save a changed base URL first: the service checks it again (its name may resolve differently
    now than a moment ago, when the form checked it), and if that fails nothing else is saved."""
    data = form.cleaned_data
    if "base_url" not in data or data["base_url"] == profile.openai_base_url:
        return True
    try:
        profile_set_base_url(profile=profile, base_url=data["base_url"])
    except HostRefused as refusal:
        form.add_error("base_url", refusal.message)
        return False
    form.base_url_changed = True
    return True


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
    if form.base_url_changed:
        done.append(
            "Base URL saved." if data["base_url"] else "Base URL removed: your key goes to the default."
        )
    if done:
        messages.success(request, " ".join(done))
    else:
        messages.info(request, "Nothing to save: enter a new key or change the organization ID.")
