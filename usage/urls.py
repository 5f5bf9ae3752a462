from django.urls import path

from . import api, views

urlpatterns = [
    path("usage/", views.usage_page, name="usage"),
    path("usage/export.csv", views.usage_export, name="usage-export"),
    path("usage/budget/", views.budget_save, name="usage-budget"),  # POST only
    path("api/usage/", api.UsageApi.as_view(), name="api-usage"),
]
