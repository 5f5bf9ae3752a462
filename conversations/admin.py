"""Conversations in the admin: who has how many, and when; never what was said.

Staff see each conversation's owner, title, message count and dates, to answer "how much is
stored, and whose". No page shows a message's text or a system prompt: no form has those fields,
messages have no admin of their own and no inline, and a message's str() is its role and id. The
admin cannot add or change a conversation (read-only); deleting one deletes its messages.
"""

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from .models import Conversation


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["title_or_id", "owner", "message_count", "archived", "created_at", "updated_at"]
    list_filter = ["archived", "pinned"]
    list_select_related = ["owner"]
    search_fields = ["owner__username", "owner__email", "title"]
    ordering = ["-updated_at"]
    date_hierarchy = "updated_at"
    show_full_result_count = False  # one COUNT fewer on large tables
    # The only fields any page shows: no content, no system prompt, no parameters.
    fields = (
        "owner",
        "title",
        "model",
        "message_count",
        "pinned",
        "archived",
        "imported_from",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Conversation]:
        return super().get_queryset(request).annotate(messages_count=Count("messages"))

    @admin.display(description="Title", ordering="title")
    def title_or_id(self, conversation: Conversation) -> str:
        return conversation.title or f"(untitled) {conversation.id}"

    @admin.display(description="Messages", ordering="messages_count")
    def message_count(self, conversation: Conversation) -> int:
        return int(getattr(conversation, "messages_count", 0))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Conversation | None = None) -> bool:
        return False
