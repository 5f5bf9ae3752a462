"""Password change and password reset: Django's own views, in our templates.

Changing or resetting a password ends every other session of the user: Django keeps a hash of the
password in each session and drops a session whose hash no longer matches (the session that made
the change is updated and stays). API tokens are not tied to the password, so the page after a
change offers to revoke them all.

The reset request answers the same for a known and an unknown address (no user enumeration); the
link in the e-mail works once, for PASSWORD_RESET_TIMEOUT seconds, and is sent through EMAIL_URL.
Reset links are built from the request's host, which ALLOWED_HOSTS must pin down.
"""

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordResetForm
from django.http import HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from core.http import AuthenticatedHttpRequest

from .tokens import token_list, tokens_revoke_all

# Not Django's default template names for the change pages: the admin's own password change pages
# use those, and must keep the admin's look.
change = auth_views.PasswordChangeView.as_view(template_name="registration/password_change.html")


class PasswordChangeDonePage(auth_views.PasswordChangeDoneView):
    template_name = "registration/password_changed.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        request = cast(AuthenticatedHttpRequest, self.request)  # the view is behind login_required
        tokens = token_list(user=request.user).count()
        return super().get_context_data(api_token_count=tokens, **kwargs)


change_done = PasswordChangeDonePage.as_view()


@login_required
@require_POST
def revoke_tokens(request: AuthenticatedHttpRequest) -> HttpResponse:
    revoked = tokens_revoke_all(user=request.user)
    if revoked:
        messages.success(
            request, f"Revoked {revoked} API token{'s' if revoked != 1 else ''}: they no longer work."
        )
    else:
        messages.info(request, "You had no API tokens to revoke.")
    return redirect("profile-settings")


def reset_link_lifetime() -> str:
    """PASSWORD_RESET_TIMEOUT in words, for the page and the e-mail: "1 hour", "30 minutes"."""
    seconds = settings.PASSWORD_RESET_TIMEOUT
    for unit, length in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= length and (seconds % length == 0 or unit == "minute"):
            count = seconds // length
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


class PasswordResetPage(auth_views.PasswordResetView):
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        self.extra_email_context = {"reset_link_lifetime": reset_link_lifetime()}
        return super().form_valid(form)


class PasswordResetDonePage(auth_views.PasswordResetDoneView):
    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(reset_link_lifetime=reset_link_lifetime(), **kwargs)


reset = PasswordResetPage.as_view()
reset_done = PasswordResetDonePage.as_view()
reset_confirm = auth_views.PasswordResetConfirmView.as_view()
reset_complete = auth_views.PasswordResetCompleteView.as_view()
