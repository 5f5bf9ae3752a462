from django.urls import path

from . import accounts, views

urlpatterns = [
    path("accounts/login/", accounts.LoginPage.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutPage.as_view(), name="logout"),  # POST only
    path("accounts/signup/", accounts.signup, name="signup"),
    path("profile/settings/", views.settings_page, name="profile-settings"),
    path("profile/settings/key/remove/", views.remove_key, name="profile-remove-key"),
]
