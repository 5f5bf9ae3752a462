from django.urls import path

from . import conversation_stream, openai_compat, pages, views

urlpatterns = [
    path("c/<uuid:conversation_id>/", pages.conversation_page, name="chat-conversation"),
    path("api/chat/openai", views.chat_openai, name="chat-openai"),
    # Saved conversations: the answer streams and is saved here; the rest is conversations/urls.py.
    path(
        "api/conversations/<uuid:conversation_id>/messages/",
        conversation_stream.conversation_message,
        name="conversation-messages",
    ),
    path(
        "api/conversations/<uuid:conversation_id>/messages/<uuid:message_id>/stop/",
        conversation_stream.conversation_message_stop,
        name="conversation-message-stop",
    ),
    # OpenAI-compatible: the SDKs' base_url is http://host/v1
    path("v1/chat/completions", openai_compat.chat_completions, name="openai-chat-completions"),
    path("v1/models", openai_compat.models, name="openai-models"),
    path("v1/<path:path>", openai_compat.unknown_endpoint),
]
