"""Saved conversations over the REST API: privacy (404 for anyone else's), the list (newest first,
pages, search, archive), a conversation's branch and switching branch, deleting, the bounds, and
the admin showing no content. On SQLite and on PostgreSQL (DATABASE_URL).
"""

import uuid
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from conversations.models import Conversation, Message
from conversations.selectors import branch_messages
from conversations.services import (
    conversation_create,
    conversation_update,
    message_add,
    title_from_first_question,
)
from core.errors import ApiError
from profiles.tokens import token_create
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

LIST_URL = "/api/conversations/"
USER = Message.Role.USER
ASSISTANT = Message.Role.ASSISTANT


def detail_url(conversation_id) -> str:
    return f"{LIST_URL}{conversation_id}/"


@pytest.fixture
def ann(db):
    return make_user("ann")


@pytest.fixture
def ben(db):
    return make_user("ben")


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    assert body["settings_url"].endswith("/profile/settings/")
    return body


def chat(owner, title: str, *turns: str, ago_minutes: int = 0) -> Conversation:
    """A conversation with alternating user/assistant messages, last active `ago_minutes` ago."""
    conversation = conversation_create(owner=owner, title=title)
    parent = None
    for index, text in enumerate(turns):
        parent = message_add(
            conversation=conversation, parent=parent, role=USER if index % 2 == 0 else ASSISTANT, content=text
        )
    when = timezone.now() - timedelta(minutes=ago_minutes)
    Conversation.objects.filter(pk=conversation.pk).update(updated_at=when)
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def branched(ann):
    """u1 -> a1 -> {u2a -> a2a, u2b -> a2b}: the second question edited; the current leaf is a2b."""
    conversation = conversation_create(owner=ann, title="Squares")
    u1 = message_add(conversation=conversation, parent=None, role=USER, content="Square a list?")
    a1 = message_add(conversation=conversation, parent=u1, role=ASSISTANT, content="[x * x for x in xs]")
    u2a = message_add(conversation=conversation, parent=a1, role=USER, content="Only the even ones?")
    a2a = message_add(conversation=conversation, parent=u2a, role=ASSISTANT, content="if x % 2 == 0")
    u2b = message_add(conversation=conversation, parent=a1, role=USER, content="Only the odd ones?")
    a2b = message_add(conversation=conversation, parent=u2b, role=ASSISTANT, content="if x % 2")
    return conversation, {"u1": u1, "a1": a1, "u2a": u2a, "a2a": a2a, "u2b": u2b, "a2b": a2b}


# --- create, read ---------------------------------------------------------------------------------


def test_create_is_201_with_the_conversation_and_no_messages(ann):
    response = client_for(ann).post(
        LIST_URL, {"title": "Trip", "model": "gpt-4o", "system_prompt": "Be brief."}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["title"] == "Trip"
    assert body["model"] == "gpt-4o"
    assert body["system_prompt"] == "Be brief."
    assert body["messages"] == []
    assert body["current_leaf_id"] is None
    assert Conversation.objects.get(id=body["id"]).owner == ann


def test_create_with_nothing_is_an_untitled_conversation(ann):
    response = client_for(ann).post(LIST_URL, {}, format="json")
    assert response.status_code == 201
    assert response.json()["title"] == ""


def test_create_refuses_an_unknown_field(ann):
    body = assert_error(client_for(ann).post(LIST_URL, {"titel": "x"}, format="json"), 400, "invalid_request")
    assert "titel" in body["fields"]
    assert not Conversation.objects.exists()


def test_detail_shows_the_current_branch_oldest_first_with_sibling_ids(ann, branched):
    conversation, m = branched
    body = client_for(ann).get(detail_url(conversation.id)).json()
    assert [message["id"] for message in body["messages"]] == [
        str(m[name].id) for name in ("u1", "a1", "u2b", "a2b")
    ]
    by_id = {message["id"]: message for message in body["messages"]}
    assert by_id[str(m["u2b"].id)]["sibling_ids"] == [str(m["u2a"].id), str(m["u2b"].id)]
    assert by_id[str(m["a1"].id)]["sibling_ids"] == [str(m["a1"].id)]
    assert by_id[str(m["u1"].id)]["sibling_ids"] == [str(m["u1"].id)]
    first = body["messages"][0]
    assert first["parent_id"] is None
    assert first["role"] == "user"
    assert first["content"] == "Square a list?"
    assert first["status"] == "complete"
    assert {"id", "parent_id", "role", "content", "model", "status", "created_at", "sibling_ids"} <= set(
        first
    )
    assert body["messages"][1]["parent_id"] == str(m["u1"].id)
    assert body["current_leaf_id"] == str(m["a2b"].id)


def test_a_branch_is_read_in_the_same_few_queries_however_long(ann, django_assert_max_num_queries):
    conversation = chat(ann, "Long", *[f"turn {n}" for n in range(60)])
    with django_assert_max_num_queries(2):
        branch = branch_messages(conversation=conversation)
    assert len(branch) == 60
    assert branch[-1].message.content == "turn 59"


def test_token_auth_reads_the_conversation(ann):
    conversation = chat(ann, "With a token", "hi")
    _, token = token_create(user=ann, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get(detail_url(conversation.id)).json()["title"] == "With a token"


def test_no_credentials_is_401(ann):
    conversation = chat(ann, "Mine", "hi")
    assert_error(APIClient().get(LIST_URL), 401, "not_authenticated")
    assert_error(APIClient().get(detail_url(conversation.id)), 401, "not_authenticated")


# --- privacy --------------------------------------------------------------------------------------


def test_another_users_conversation_is_404_everywhere_like_an_unknown_one(ann, ben):
    secret = chat(ann, "Ann's plans", "my secret question")
    client = client_for(ben)
    unknown = assert_error(client.get(detail_url(uuid.uuid4())), 404, "not_found")
    assert assert_error(client.get(detail_url(secret.id)), 404, "not_found") == unknown
    assert_error(client.patch(detail_url(secret.id), {"title": "mine now"}, format="json"), 404, "not_found")
    assert_error(client.delete(detail_url(secret.id)), 404, "not_found")
    assert_error(client.get(f"{LIST_URL}export/?ids={secret.id}"), 404, "not_found")
    assert client.get(LIST_URL).json()["count"] == 0
    assert client.get(LIST_URL, {"search": "secret"}).json()["count"] == 0
    secret.refresh_from_db()
    assert secret.title == "Ann's plans"


def test_a_session_cannot_reach_another_users_conversation_either(ann, ben):
    secret = chat(ann, "Ann's plans", "hi")
    client = Client()
    client.force_login(ben)
    assert client.get(detail_url(secret.id)).status_code == 404


def test_the_list_holds_only_the_callers_conversations(ann, ben):
    chat(ann, "Ann's", "hi")
    chat(ben, "Ben's", "hi")
    titles = [item["title"] for item in client_for(ann).get(LIST_URL).json()["results"]]
    assert titles == ["Ann's"]


# --- the list -------------------------------------------------------------------------------------


def test_the_list_is_newest_first_in_pages(ann, settings):
    settings.CONVERSATIONS_PAGE_SIZE = 2
    for minutes, title in ((30, "oldest"), (20, "middle"), (10, "newer"), (0, "newest")):
        chat(ann, title, "hi", ago_minutes=minutes)
    client = client_for(ann)
    first = client.get(LIST_URL).json()
    assert first["count"] == 4
    assert first["previous"] is None
    assert [item["title"] for item in first["results"]] == ["newest", "newer"]
    assert set(first["results"][0]) >= {
        "id",
        "title",
        "model",
        "pinned",
        "archived",
        "created_at",
        "updated_at",
    }
    second = client.get(first["next"]).json()
    assert [item["title"] for item in second["results"]] == ["middle", "oldest"]
    assert second["next"] is None
    assert second["previous"] is not None
    bigger = client.get(LIST_URL, {"page_size": 3}).json()
    assert len(bigger["results"]) == 3


def test_a_new_message_moves_a_conversation_to_the_top(ann):
    old = chat(ann, "old", "hi", ago_minutes=60)
    chat(ann, "recent", "hi", ago_minutes=5)
    message_add(conversation=old, parent=old.current_leaf, role=ASSISTANT, content="hello again")
    titles = [item["title"] for item in client_for(ann).get(LIST_URL).json()["results"]]
    assert titles == ["old", "recent"]


def test_a_page_past_the_end_is_404_in_the_error_shape(ann):
    chat(ann, "only", "hi")
    assert_error(client_for(ann).get(LIST_URL, {"page": 5}), 404, "not_found")


def test_archived_ones_are_listed_only_with_archived_true(ann):
    chat(ann, "current", "hi")
    archived = chat(ann, "put away", "hi")
    conversation_update(conversation=archived, archived=True)
    client = client_for(ann)
    assert [item["title"] for item in client.get(LIST_URL).json()["results"]] == ["current"]
    listed = client.get(LIST_URL, {"archived": "true"}).json()["results"]
    assert [item["title"] for item in listed] == ["put away"]
    assert listed[0]["archived"] is True
    assert_error(client.get(LIST_URL, {"archived": "maybe"}), 400, "invalid_request")


def test_search_finds_titles_and_message_text(ann):
    chat(ann, "Squares in Python", "How do I square a list?", "Use a comprehension.")
    chat(ann, "Holiday", "Where should I go in June?", "Lisbon is lovely then.")
    chat(ann, "Unrelated", "Nothing to see")
    client = client_for(ann)

    def found(search: str) -> list[str]:
        return sorted(item["title"] for item in client.get(LIST_URL, {"search": search}).json()["results"])

    assert found("python") == ["Squares in Python"]  # the title
    assert found("lisbon") == ["Holiday"]  # an answer's text
    assert found("comprehension") == ["Squares in Python"]
    assert found("pyth") == ["Squares in Python"]  # as the user types
    assert found("giraffe") == []
    assert found("   ") == ["Holiday", "Squares in Python", "Unrelated"]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="full-text search is PostgreSQL's")
def test_search_on_postgresql_is_full_text_with_stemming(ann):
    chat(ann, "Training", "I went running yesterday and the day before.")
    chat(ann, "Other", "Nothing to see")
    found = client_for(ann).get(LIST_URL, {"search": "runs yesterday"}).json()["results"]
    assert [item["title"] for item in found] == ["Training"]  # "runs" and "running": the stem "run"


def test_search_of_odd_characters_is_not_an_error(ann):
    chat(ann, "Math", "Is 2 & 3 | 4 :* fine?")
    response = client_for(ann).get(LIST_URL, {"search": "& | :* ! ( )"})
    assert response.status_code == 200
    assert_error(client_for(ann).get(LIST_URL, {"search": "x" * 201}), 400, "invalid_request")


# --- change, switch branch, delete ----------------------------------------------------------------


def test_patch_renames_pins_and_archives(ann):
    conversation = chat(ann, "Draft", "hi", ago_minutes=30)
    before = conversation.updated_at
    response = client_for(ann).patch(
        detail_url(conversation.id), {"title": "Final", "pinned": True, "archived": True}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["title"], body["pinned"], body["archived"]) == ("Final", True, True)
    conversation.refresh_from_db()
    assert (conversation.title, conversation.pinned, conversation.archived) == ("Final", True, True)
    assert conversation.updated_at == before  # renaming is not activity: the list order stays


def test_patch_current_leaf_switches_branch_down_to_its_newest_leaf(ann, branched):
    conversation, m = branched
    client = client_for(ann)
    response = client.patch(detail_url(conversation.id), {"current_leaf_id": str(m["u2a"].id)}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert [message["content"] for message in body["messages"]] == [
        "Square a list?",
        "[x * x for x in xs]",
        "Only the even ones?",
        "if x % 2 == 0",
    ]
    assert body["current_leaf_id"] == str(m["a2a"].id)
    assert body["messages"][2]["sibling_ids"] == [str(m["u2a"].id), str(m["u2b"].id)]
    # kept: a reload shows the same branch
    assert client.get(detail_url(conversation.id)).json()["current_leaf_id"] == str(m["a2a"].id)


def test_patch_current_leaf_of_another_conversation_is_404(ann, branched):
    conversation, _ = branched
    elsewhere = chat(ann, "Other", "hi")
    body = assert_error(
        client_for(ann).patch(
            detail_url(conversation.id), {"current_leaf_id": str(elsewhere.current_leaf_id)}, format="json"
        ),
        404,
        "not_found",
    )
    assert "current_leaf_id" in body["fields"]
    conversation.refresh_from_db()
    assert conversation.current_leaf_id == branched[1]["a2b"].id


def test_patch_refuses_bad_and_unknown_fields(ann):
    conversation = chat(ann, "Draft", "hi")
    client = client_for(ann)
    assert (
        "owner"
        in assert_error(
            client.patch(detail_url(conversation.id), {"owner": 1}, format="json"), 400, "invalid_request"
        )["fields"]
    )
    assert_error(
        client.patch(detail_url(conversation.id), {"current_leaf_id": "nope"}, format="json"),
        400,
        "invalid_request",
    )
    assert_error(
        client.patch(detail_url(conversation.id), {"title": 12}, format="json"), 400, "invalid_request"
    )
    assert_error(
        client.patch(detail_url(conversation.id), {"title": "x" * 201}, format="json"), 400, "invalid_request"
    )


def test_delete_is_204_and_takes_the_messages(ann, branched):
    conversation, _ = branched
    client = client_for(ann)
    response = client.delete(detail_url(conversation.id))
    assert response.status_code == 204
    assert not Conversation.objects.filter(id=conversation.id).exists()
    assert not Message.objects.filter(conversation_id=conversation.id).exists()
    assert_error(client.get(detail_url(conversation.id)), 404, "not_found")


def test_deleting_a_user_deletes_their_conversations_and_messages(ann, ben, branched):
    kept = chat(ben, "Ben's", "hi")
    get_user_model().objects.filter(pk=ann.pk).delete()
    assert list(Conversation.objects.all()) == [kept]
    assert list(Message.objects.values_list("conversation_id", flat=True)) == [kept.id]


# --- bounds ---------------------------------------------------------------------------------------


def test_a_message_past_message_max_chars_is_a_400(ann, settings):
    settings.MESSAGE_MAX_CHARS = 10
    conversation = chat(ann, "Short")
    with pytest.raises(ApiError) as refused:
        message_add(conversation=conversation, parent=None, role=USER, content="x" * 11)
    assert (refused.value.status, refused.value.code) == (400, "message_too_long")
    message_add(conversation=conversation, parent=None, role=USER, content="x" * 10)
    assert_error(
        client_for(ann).post(LIST_URL, {"system_prompt": "x" * 11}, format="json"), 400, "invalid_request"
    )


def test_a_conversation_past_its_message_bound_is_a_400(ann, settings):
    settings.CONVERSATION_MAX_MESSAGES = 3
    conversation = chat(ann, "Full", "one", "two", "three")
    with pytest.raises(ApiError) as refused:
        message_add(conversation=conversation, parent=conversation.current_leaf, role=USER, content="four")
    assert (refused.value.status, refused.value.code) == (400, "conversation_full")
    assert Message.objects.filter(conversation=conversation).count() == 3


def test_a_parent_from_another_conversation_is_refused(ann):
    one = chat(ann, "One", "hi")
    two = chat(ann, "Two", "hi")
    with pytest.raises(ApiError) as refused:
        message_add(conversation=two, parent=one.current_leaf, role=USER, content="x")
    assert refused.value.status == 404


def test_the_first_question_makes_a_title_that_fits():
    assert (
        title_from_first_question("\n  How do   I square\ta list?  \nMore details")
        == "How do I square a list?"
    )
    long = title_from_first_question("word " * 100)
    assert len(long) == 200
    assert long.endswith("…")
    assert title_from_first_question("   \n ") == ""


# --- the schema and the admin ---------------------------------------------------------------------


def test_the_openapi_schema_describes_the_conversation_endpoints(ann):
    client = Client()
    client.force_login(ann)
    schema = client.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths[LIST_URL]) >= {"get", "post"}
    assert set(paths["/api/conversations/{conversation_id}/"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/api/conversations/export/"]
    assert "post" in paths["/api/conversations/import/"]
    message = schema["components"]["schemas"]["BranchMessage"]["properties"]
    assert {"id", "parent_id", "role", "content", "status", "sibling_ids"} <= set(message)


PLANTED = "the planted secret text 7f3a"


@pytest.fixture
def staff_client(db) -> Client:
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    client = Client()
    client.force_login(admin)
    return client


def test_the_admin_lists_conversations_without_their_content(ann, staff_client):
    conversation = conversation_create(owner=ann, title="Visible title", system_prompt=f"prompt {PLANTED}")
    question = message_add(conversation=conversation, parent=None, role=USER, content=f"question {PLANTED}")
    message_add(conversation=conversation, parent=question, role=ASSISTANT, content=f"answer {PLANTED}")

    listing = staff_client.get("/admin/conversations/conversation/")
    assert listing.status_code == 200
    html = listing.content.decode()
    assert "Visible title" in html
    assert "ann" in html
    assert ">2<" in html  # the message count
    assert PLANTED not in html

    page = staff_client.get(f"/admin/conversations/conversation/{conversation.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Visible title" in html
    assert PLANTED not in html
    assert "<textarea" not in html  # read-only: nothing to edit

    searched = staff_client.get("/admin/conversations/conversation/", {"q": "planted"})
    assert "Visible title" not in searched.content.decode()  # message text is not searchable either
    assert staff_client.get("/admin/conversations/message/").status_code == 404  # no admin for messages
    assert staff_client.get("/admin/conversations/conversation/add/").status_code == 403

    deleting = staff_client.get(f"/admin/conversations/conversation/{conversation.id}/delete/")
    assert deleting.status_code == 200
    assert PLANTED not in deleting.content.decode()
