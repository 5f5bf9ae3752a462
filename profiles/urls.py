from django.urls import path

from . import views

urlpatterns = [
    path("profile/settings/", views.settings_page, name="profile-settings"),
]
