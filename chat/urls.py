from django.urls import path

from . import openai_compat, views

urlpatterns = [
    path("api/chat/openai", views.chat_openai, name="chat-openai"),
    # OpenAI-compatible: the SDKs' base_url is http://host/v1
    path("v1/chat/completions", openai_compat.chat_completions, name="openai-chat-completions"),
    path("v1/models", openai_compat.models, name="openai-models"),
    path("v1/<path:path>", openai_compat.unknown_endpoint),
]
