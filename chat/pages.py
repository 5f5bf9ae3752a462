"""The chat page at "/": the conversation lives in the page; chat.js talks to POST /api/chat/openai."""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from profiles.services import profile_for

from .model_rules import rule_for


@dataclass(frozen=True, slots=True)
class ModelChoice:
    id: str
    accepts_temperature: bool


def model_choices() -> list[ModelChoice]:
    return [ModelChoice(model, rule_for(model).accepts_temperature) for model in settings.CHAT_MODELS]


@login_required
def chat_page(request: HttpRequest) -> HttpResponse:
    profile = profile_for(user=request.user)
    return render(
        request,
        "chat/chat.html",
        {
            "models": model_choices(),
            "has_key": profile.has_openai_api_key,
            "api_url": reverse("chat-openai"),
            "settings_url": reverse("profile-settings"),
        },
    )
