from django.urls import path

from . import accounts, password_pages, token_pages, views

urlpatterns = [
    path("accounts/login/", accounts.LoginPage.as_view(), name="login"),
    path("accounts/logout/", accounts.LogoutPage.as_view(), name="logout"),  # POST only
    path("accounts/signup/", accounts.signup, name="signup"),
    # Django's names, so its views find each other (password_pages.py).
    path("accounts/password_change/", password_pages.change, name="password_change"),
    path("accounts/password_change/done/", password_pages.change_done, name="password_change_done"),
    path(
        "accounts/password_change/revoke_tokens/",
        password_pages.revoke_tokens,
        name="password_change_revoke_tokens",
    ),  # POST only
    path("accounts/password_reset/", password_pages.reset, name="password_reset"),
    path("accounts/password_reset/done/", password_pages.reset_done, name="password_reset_done"),
    path("accounts/reset/<uidb64>/<token>/", password_pages.reset_confirm, name="password_reset_confirm"),
    path("accounts/reset/done/", password_pages.reset_complete, name="password_reset_complete"),
    path("profile/settings/", views.settings_page, name="profile-settings"),
    path("profile/settings/key/remove/", views.remove_key, name="profile-remove-key"),
    path("profile/settings/tokens/", token_pages.create_token, name="profile-token-create"),  # POST
    path(
        "profile/settings/tokens/<int:token_id>/revoke/",
        token_pages.revoke_token,
        name="profile-token-revoke",
    ),  # POST only
]
