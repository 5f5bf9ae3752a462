"""Log in (Django's view, plus the sign-up link) and sign up (switched by settings.SIGNUP_ENABLED)."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from .login_forms import LoginForm


class LoginPage(LoginView):
    authentication_form = LoginForm  # throttled: failed logins per client address
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(signup_enabled=settings.SIGNUP_ENABLED, **kwargs)


class LogoutPage(LogoutView):
    """Django's logout (POST only), saying so on the page it lands on."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.info(request, "You have been logged out.")
        return response


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text="Optional. Only used if an administrator needs to reach you."
    )

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")


def signup(request: HttpRequest) -> HttpResponse:
    if not settings.SIGNUP_ENABLED:
        raise Http404("Sign-up is switched off.")
    if request.user.is_authenticated:
        return redirect(settings.LOGIN_REDIRECT_URL)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            request, f"Welcome, {user.get_username()}! Add your OpenAI API key to start chatting."
        )
        return redirect("profile-settings")
    return render(request, "registration/signup.html", {"form": form})
