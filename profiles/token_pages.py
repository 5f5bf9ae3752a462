"""The settings page's "API tokens" section: list, create, revoke (templates/profiles/_api_tokens.html).

A new token's text is rendered once, in the response to the POST that made it, and kept nowhere:
not in the session, not in a message (Django's messages live in a cookie), not in a cache
(the response is marked no-store).
"""

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from .models import ApiToken
from .tokens import MAX_DAYS, NAME_MAX_LENGTH, token_create, token_expiry, token_list, token_revoke

SECTION = "api-tokens"  # the section's id on the settings page


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=NAME_MAX_LENGTH,
        help_text="What the token is for, such as “laptop” or “CI”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "laptop"}),
    )
    expires_in_days = forms.IntegerField(
        label="Expires after (days)",
        required=False,
        min_value=1,
        max_value=MAX_DAYS,
        help_text="Optional. Leave empty for a token that never expires.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_token_%s")  # unique among the settings page's fields
        super().__init__(*args, **kwargs)


def section_context(
    request: HttpRequest,
    *,
    form: ApiTokenForm | None = None,
    created: ApiToken | None = None,
    created_text: str | None = None,
) -> dict[str, Any]:
    """What _api_tokens.html shows: the caller's tokens, the form, how to use a token, the new token."""
    return {
        "tokens": list(token_list(user=_user(request))),
        "form": form or ApiTokenForm(),
        "api_base_url": request.build_absolute_uri(reverse("openai-models")).removesuffix("/models"),
        "created": created,
        "created_text": created_text,
    }


@never_cache  # the response carries the new token's text
@login_required
def create_token(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return redirect(reverse("profile-settings") + f"#{SECTION}")
    form = ApiTokenForm(request.POST)
    if not form.is_valid():
        return render(
            request, "profiles/api_tokens.html", {"api_tokens": section_context(request, form=form)}
        )
    token, text = token_create(
        user=_user(request),
        name=form.cleaned_data["name"],
        expires_at=token_expiry(days=form.cleaned_data["expires_in_days"]),
    )
    section = section_context(request, created=token, created_text=text)
    return render(request, "profiles/api_tokens.html", {"api_tokens": section})


@login_required
@require_POST
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    user = _user(request)
    token = token_list(user=user).filter(pk=token_id).first()
    # Someone else's token id is answered as an unknown one: nothing is revealed, nothing revoked.
    if token is not None and token_revoke(user=user, token_id=token.pk):
        messages.success(request, f"API token “{token.name}” ({token.prefix}…) revoked: it no longer works.")
    else:
        messages.info(request, "That API token was already revoked.")
    return redirect(reverse("profile-settings") + f"#{SECTION}")


def _user(request: HttpRequest) -> AbstractBaseUser:
    user = request.user
    if not isinstance(user, AbstractBaseUser):  # login_required has sent anonymous visitors away
        raise PermissionDenied
    return user
