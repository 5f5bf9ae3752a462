"""The chat page: "/" starts a new conversation, "/c/<id>/" shows one of the user's saved ones (another
user's is a 404, as for an unknown id). chat.js does the rest through /api/conversations/: the sidebar,
sending (Server-Sent Events), stopping, editing, regenerating and moving between branches.

The model picker lists the models the key in use can reach (GET /models upstream, with the user's
own key or the team key, wherever it goes), cached per user; CHAT_MODELS when that list cannot be
had quickly, or when CHAT_MODELS_FROM_UPSTREAM is off.
"""

import asyncio
import hashlib
import logging
import re
import uuid
from dataclasses import dataclass

import orjson
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from conversations.models import Conversation
from conversations.selectors import conversation_for
from core.errors import ApiError
from core.http import AuthenticatedHttpRequest
from profiles.exceptions import OpenAIKeyMissing, OpenAIKeyProblem
from profiles.services import profile_for, profile_openai_credentials
from upstream import client as upstream
from upstream.credentials import OpenAICredentials

from .model_rules import rule_for

logger = logging.getLogger(__name__)

# The list a key reaches changes rarely: asking once per user every few minutes keeps page loads
# free of an upstream round trip (~100-300 ms to OpenAI). A failure is remembered briefly, so a
# down upstream does not cost every page load the whole wait.
MODELS_CACHE_SECONDS = 300
MODELS_FAILURE_CACHE_SECONDS = 30
# The longest the page waits for the list (retries included) before showing CHAT_MODELS.
MODELS_TIMEOUT_SECONDS = 2.0
# What /models lists that chat completions cannot use (OpenAI lists ~100 models, most of them these).
NOT_FOR_CHAT = re.compile(
    r".*(embed|whisper|tts|dall-e|moderation|transcribe|image|davinci|babbage|realtime|sora).*"
)


@dataclass(frozen=True, slots=True)
class ModelChoice:
    id: str
    accepts_temperature: bool


def model_choices(model_ids: list[str] | None = None) -> list[ModelChoice]:
    ids = settings.CHAT_MODELS if model_ids is None else model_ids
    return [ModelChoice(model, rule_for(model).accepts_temperature) for model in ids]


def picker_models(*, user_id: int, credentials: OpenAICredentials) -> list[str]:
    """The models to offer: those the key reaches, CHAT_MODELS' order first (the first is preselected),
    then the rest by name. CHAT_MODELS on any failure."""
    key = _cache_key(user_id, credentials)
    cached: list[str] | None = cache.get(key)
    if cached is not None:
        return cached
    try:
        reachable = async_to_sync(_reachable_models)(credentials)
    except Exception as exc:  # whatever it was, the page must still load: with the default list
        logger.info("model list unavailable for user %s (%s): using CHAT_MODELS", user_id, type(exc).__name__)
        reachable = []
    chat_models = [model for model in reachable if not NOT_FOR_CHAT.fullmatch(model)]
    if not chat_models:
        cache.set(key, settings.CHAT_MODELS, MODELS_FAILURE_CACHE_SECONDS)
        return list(settings.CHAT_MODELS)
    preferred = [model for model in settings.CHAT_MODELS if model in chat_models]
    models = preferred + sorted(set(chat_models) - set(preferred))
    cache.set(key, models, MODELS_CACHE_SECONDS)
    return models


async def _reachable_models(credentials: OpenAICredentials) -> list[str]:
    reply = await asyncio.wait_for(upstream.get_models(credentials=credentials), MODELS_TIMEOUT_SECONDS)
    listed = orjson.loads(reply.content).get("data")
    return [item["id"] for item in listed if isinstance(item, dict) and isinstance(item.get("id"), str)]


def _cache_key(user_id: int, credentials: OpenAICredentials) -> str:
    # Per user, and per key and server: a new key or base URL is asked afresh. Only a digest of
    # them is in the cache key: the cache (Redis, maybe) never holds a key.
    where = f"{credentials.source}\0{credentials.base_url}\0{credentials.organization}\0{credentials.api_key}"
    return f"chat-models:{user_id}:{hashlib.sha256(where.encode()).hexdigest()[:32]}"


@login_required
def chat_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    return _chat_page(request, conversation=None)


@login_required
def conversation_page(request: AuthenticatedHttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
    try:
        conversation = conversation_for(owner=request.user, conversation_id=conversation_id)
    except ApiError:  # another user's conversation is "not found" too
        raise Http404("No conversation of yours has this address.") from None
    return _chat_page(request, conversation=conversation)


def _chat_page(request: AuthenticatedHttpRequest, *, conversation: Conversation | None) -> HttpResponse:
    profile = profile_for(user=request.user)
    has_key = True
    models = None
    try:
        credentials = profile_openai_credentials(profile=profile)  # own key, else the team key
    except OpenAIKeyMissing:
        has_key = False
    except OpenAIKeyProblem:
        pass  # an unreadable key: the chat endpoint says so; the picker shows the defaults
    else:
        if settings.CHAT_MODELS_FROM_UPSTREAM:
            models = picker_models(user_id=profile.user_id, credentials=credentials)
    return render(
        request,
        "chat/chat.html",
        {
            "models": model_choices(models),
            "has_key": has_key,
            "settings_url": reverse("profile-settings"),
            "conversation": conversation,
        },
    )
