"""Where a request goes: pages (profiles, chat), the chat API, the admin."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("profiles.urls")),
    path("", include("chat.urls")),
]
