"""Included at api/conversations/ (chatproject/urls.py)."""

from django.urls import path

from .api import ConversationApi, ConversationsApi, ConversationsExportApi, ConversationsImportApi

urlpatterns = [
    path("", ConversationsApi.as_view(), name="api-conversations"),
    path("export/", ConversationsExportApi.as_view(), name="api-conversations-export"),
    # Its body limit is IMPORT_MAX_BYTES (chatproject/body_limit.py names this path).
    path("import/", ConversationsImportApi.as_view(), name="api-conversations-import"),
    path("<uuid:conversation_id>/", ConversationApi.as_view(), name="api-conversation"),
]
