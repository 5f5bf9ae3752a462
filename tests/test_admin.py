"""The admin: profiles listed, searched, filtered and changed; the stored key never in any page."""

import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.db import connection

from profiles.models import Profile
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

User = get_user_model()
CAROL_KEY = "sk-carol-secret-0123456789abcdKLMN"
NEW_KEY = "sk-proj-Admin_Set-0123456789abcdefOPQR"
LIST_URL = "/admin/profiles/profile/"


@pytest.fixture
def carol(db):
    return make_user("carol", api_key=CAROL_KEY, organization="org-carol7")


@pytest.fixture
def dave(db):
    user = make_user("dave")
    user.email = "dave@corp.example"
    user.save()
    return user


def html_of(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def change_url(user) -> str:
    return f"{LIST_URL}{user.profile.pk}/change/"


def ciphertext(profile: Profile) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT openai_api_key FROM profiles_profile WHERE id = %s", [profile.pk])
        return cursor.fetchone()[0]


def assert_no_key(html: str, *keys: str) -> None:
    for key in keys:
        assert key not in html
        assert key[3:-4] not in html  # no large part of it either (the hint shows the last 4)


def listed_usernames(html: str) -> list[str]:
    return re.findall(r'<th class="field-user[^"]*"><a href="[^"]+">([^<]+)</a></th>', html)


def row_of(html: str, username: str) -> str:
    (row,) = [row for row in html.split("<tr>") if f">{username}</a></th>" in row]
    return row


def form_data(response) -> dict[str, object]:
    """The POST data of an admin change page as rendered (main form plus inline formsets)."""
    data: dict[str, object] = {}
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        for name in management.fields:
            data[f"{management.prefix}-{name}"] = management[name].value()
        forms.extend(formset.forms)
    for form in forms:
        for name, field in form.fields.items():
            if field.disabled:
                continue
            value = form[name].value()
            if value is None or value is False:
                continue
            if isinstance(value, (list, tuple)):
                data[form.add_prefix(name)] = [str(v) for v in value]
            else:
                data[form.add_prefix(name)] = value
    # Split date/time widgets post as name_0 / name_1.
    for name in ("last_login", "date_joined"):
        if name in data:
            value = data.pop(name)
            if value:
                data[f"{name}_0"], data[f"{name}_1"] = str(value)[:10], str(value)[11:19]
    return data


# --- List, search, filter -------------------------------------------------------------------------


def test_list_shows_user_key_status_hint_and_organization(admin_client, carol, dave):
    html = html_of(admin_client.get(LIST_URL))
    assert listed_usernames(html) == ["admin", "carol", "dave"]
    carol_row = row_of(html, "carol")
    assert 'alt="True"' in carol_row and "sk-...KLMN" in carol_row and "org-carol7" in carol_row
    dave_row = row_of(html, "dave")
    assert 'alt="False"' in dave_row
    for column in ("User", "Has key", "Key hint", "Organization", "Updated at"):
        assert column in html
    assert_no_key(html, CAROL_KEY)
    assert ciphertext(carol.profile) not in html


def test_search_by_username_and_email(admin_client, carol, dave):
    assert listed_usernames(html_of(admin_client.get(LIST_URL, {"q": "caro"}))) == ["carol"]
    assert listed_usernames(html_of(admin_client.get(LIST_URL, {"q": "corp.example"}))) == ["dave"]


def test_filter_by_has_key(admin_client, carol, dave):
    html = html_of(admin_client.get(LIST_URL))
    assert "By OpenAI key" in html and "Not set" in html
    assert listed_usernames(html_of(admin_client.get(LIST_URL, {"has_key": "yes"}))) == ["carol"]
    assert listed_usernames(html_of(admin_client.get(LIST_URL, {"has_key": "no"}))) == ["admin", "dave"]


def test_profiles_are_neither_added_nor_deleted_here(admin_client, carol):
    assert admin_client.get(f"{LIST_URL}add/").status_code == 403
    assert admin_client.get(f"{LIST_URL}{carol.profile.pk}/delete/").status_code == 403


# --- Change form ----------------------------------------------------------------------------------


def test_change_form_never_shows_or_prefills_the_key(admin_client, carol):
    html = html_of(admin_client.get(change_url(carol)))
    assert_no_key(html, CAROL_KEY)
    assert ciphertext(carol.profile) not in html
    assert 'name="openai_api_key"' not in html
    new_key_input = re.search(r'<input type="password" name="new_openai_api_key"[^>]*>', html).group(0)
    assert "value=" not in new_key_input
    assert 'name="clear_openai_api_key"' in html
    assert "sk-...KLMN" in html
    assert 'value="org-carol7"' in html


def test_change_form_sets_a_new_key(admin_client, carol):
    before = Profile.objects.get(pk=carol.profile.pk).openai_api_key_updated_at
    response = admin_client.post(
        change_url(carol), {"openai_organization_id": "org-carol7", "new_openai_api_key": NEW_KEY}
    )
    assert response.status_code == 302
    profile = Profile.objects.get(pk=carol.profile.pk)
    assert profile.openai_api_key == NEW_KEY
    assert profile.openai_api_key_updated_at > before  # written by the service
    assert profile.openai_organization_id == "org-carol7"


def test_change_form_validates_the_new_key(admin_client, carol):
    html = html_of(
        admin_client.post(
            change_url(carol), {"openai_organization_id": "org-carol7", "new_openai_api_key": "not a key"}
        )
    )
    assert "An API key has no spaces or line breaks inside." in html
    assert Profile.objects.get(pk=carol.profile.pk).openai_api_key == CAROL_KEY


def test_change_form_clears_the_key_and_keeps_the_organization(admin_client, carol):
    admin_client.post(
        change_url(carol), {"openai_organization_id": "org-carol7", "clear_openai_api_key": "on"}
    )
    profile = Profile.objects.get(pk=carol.profile.pk)
    assert profile.openai_api_key == "" and profile.openai_organization_id == "org-carol7"


def test_change_form_refuses_new_key_and_clear_together(admin_client, carol):
    html = html_of(
        admin_client.post(change_url(carol), {"new_openai_api_key": NEW_KEY, "clear_openai_api_key": "on"})
    )
    assert "Either enter a new key or clear the stored one, not both." in html
    assert NEW_KEY not in html
    assert Profile.objects.get(pk=carol.profile.pk).openai_api_key == CAROL_KEY


def test_change_form_changes_only_the_organization(admin_client, carol):
    admin_client.post(change_url(carol), {"openai_organization_id": "org-other1"})
    profile = Profile.objects.get(pk=carol.profile.pk)
    assert profile.openai_organization_id == "org-other1" and profile.openai_api_key == CAROL_KEY


def test_history_names_the_change_not_the_key(admin_client, carol):
    admin_client.post(
        change_url(carol), {"openai_organization_id": "org-carol7", "new_openai_api_key": NEW_KEY}
    )
    entry = LogEntry.objects.get(object_id=str(carol.profile.pk))
    assert "New OpenAI API key" in entry.get_change_message()
    html = html_of(admin_client.get(f"{change_url(carol).removesuffix('change/')}history/"))
    assert "New OpenAI API key" in html
    assert_no_key(html, NEW_KEY, CAROL_KEY)


# --- Action ---------------------------------------------------------------------------------------


def test_clear_key_action(admin_client, carol, dave):
    erin = make_user("erin", api_key="sk-erin-secret-0123456789abcdEFGH")
    response = admin_client.post(
        LIST_URL,
        {
            "action": "clear_openai_key",
            "_selected_action": [carol.profile.pk, dave.profile.pk],
        },
        follow=True,
    )
    assert "Cleared the OpenAI key of 1 profile(s)." in html_of(response)
    assert Profile.objects.get(pk=carol.profile.pk).openai_api_key == ""
    assert Profile.objects.get(pk=carol.profile.pk).openai_api_key_updated_at is not None
    assert Profile.objects.get(pk=erin.profile.pk).openai_api_key  # not selected: untouched


# --- The profile inline on the user admin ---------------------------------------------------------


def test_user_change_page_shows_the_profile_inline_without_the_key(admin_client, carol):
    html = html_of(admin_client.get(f"/admin/auth/user/{carol.pk}/change/"))
    assert 'name="profile-0-new_openai_api_key"' in html
    assert 'name="profile-0-clear_openai_api_key"' in html
    assert "sk-...KLMN" in html
    assert_no_key(html, CAROL_KEY)
    assert ciphertext(carol.profile) not in html


def test_user_change_page_sets_a_key_through_the_inline(admin_client, carol):
    url = f"/admin/auth/user/{carol.pk}/change/"
    data = form_data(admin_client.get(url))
    data["profile-0-new_openai_api_key"] = NEW_KEY
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    assert Profile.objects.get(user=carol).openai_api_key == NEW_KEY
    assert Profile.objects.filter(user=carol).count() == 1

    html = html_of(admin_client.get(url))
    assert "sk-...OPQR" in html
    assert_no_key(html, NEW_KEY)
    html = html_of(admin_client.get(f"/admin/auth/user/{carol.pk}/history/"))
    assert_no_key(html, NEW_KEY, CAROL_KEY)


def test_user_change_page_clears_a_key_through_the_inline(admin_client, carol):
    url = f"/admin/auth/user/{carol.pk}/change/"
    data = form_data(admin_client.get(url))
    data["profile-0-clear_openai_api_key"] = "on"
    assert admin_client.post(url, data).status_code == 302
    assert Profile.objects.get(user=carol).openai_api_key == ""


def test_adding_a_user_in_the_admin_makes_one_profile(admin_client):
    html = html_of(admin_client.get("/admin/auth/user/add/"))
    assert "new_openai_api_key" not in html  # the profile comes from the signal, not an inline
    response = admin_client.post(
        "/admin/auth/user/add/",
        {
            "username": "gina",
            "password1": "a-long-enough-password-42",
            "password2": "a-long-enough-password-42",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    assert Profile.objects.filter(user__username="gina").count() == 1


def test_admin_pages_have_no_inline_script(admin_client, carol):
    for url in (LIST_URL, change_url(carol), f"/admin/auth/user/{carol.pk}/change/"):
        html = html_of(admin_client.get(url))
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", html), url
