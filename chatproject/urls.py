"""Where a request goes: pages (profiles, chat), the chat API, the admin."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from chat.pages import chat_page
from profiles.api import ProfileApi, TokenApi, TokenApiDetail, TokensApi

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", chat_page, name="chat"),
    path("", include("profiles.urls")),
    path("", include("chat.urls")),
    path("", include("usage.urls")),  # /usage/ (page, CSV, budget), /api/usage/
    path("api/profile/", ProfileApi.as_view(), name="api-profile"),
    path("api/token/", TokenApi.as_view(), name="api-token"),
    path("api/tokens/", TokensApi.as_view(), name="api-tokens"),
    path("api/tokens/<int:token_id>/", TokenApiDetail.as_view(), name="api-token-detail"),
    path("api/conversations/", include("conversations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its script from a URL, not inline: the CSP allows no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/docs.html"),
        name="api-docs",
    ),
]

# API paths answer Django's own 400/404/500 in their JSON error shape, pages in HTML.
handler400 = "chatproject.error_pages.bad_request"
handler404 = "chatproject.error_pages.not_found"
handler500 = "chatproject.error_pages.server_error"
