"""Export and import of saved conversations: our own export back into the same account (nothing
duplicated) and into another one (a copy, new ids), ChatGPT's conversations.json with its branches,
chatbot-ui's export; bad files and files past the bounds import nothing. SQLite and PostgreSQL.
"""

import copy
import io
import json
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from chatproject.body_limit import IMPORT_PATH
from conversations.models import Conversation, Message
from conversations.services import conversation_create, conversation_update, message_add
from profiles.tokens import token_create
from tests.conftest import make_user

pytestmark = pytest.mark.django_db

DATA = Path(__file__).parent / "data"
EXPORT_URL = "/api/conversations/export/"
IMPORT_URL = "/api/conversations/import/"
USER = Message.Role.USER
ASSISTANT = Message.Role.ASSISTANT


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


def import_file(user, document: Any):
    return client_for(user).post(IMPORT_URL, document, format="json")


def counts(imported: tuple[int, int], skipped: tuple[int, int]) -> dict[str, dict[str, int]]:
    return {
        "imported": {"conversations": imported[0], "messages": imported[1]},
        "skipped": {"conversations": skipped[0], "messages": skipped[1]},
    }


def shown(user, conversation_id) -> list[tuple[str, str]]:
    body = client_for(user).get(f"/api/conversations/{conversation_id}/").json()
    return [(message["role"], message["content"]) for message in body["messages"]]


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


@pytest.fixture
def ann_history(ann):
    """Two conversations of ann's: one with an edited question (two branches), one archived and pinned."""
    first = conversation_create(owner=ann, title="Squares", model="gpt-4o", system_prompt="Be brief.")
    u1 = message_add(conversation=first, parent=None, role=USER, content="Square a list?")
    a1 = message_add(
        conversation=first, parent=u1, role=ASSISTANT, content="[x * x for x in xs]", model="gpt-4o"
    )
    u2a = message_add(conversation=first, parent=a1, role=USER, content="Only the even ones?")
    message_add(conversation=first, parent=u2a, role=ASSISTANT, content="if x % 2 == 0")
    u2b = message_add(conversation=first, parent=a1, role=USER, content="Only the odd ones?")
    message_add(
        conversation=first, parent=u2b, role=ASSISTANT, content="if x % 2", status=Message.Status.STOPPED
    )
    second = conversation_create(owner=ann, title="Holiday", parameters={"temperature": 0.7})
    message_add(conversation=second, parent=None, role=USER, content="Where in June?")
    conversation_update(conversation=second, pinned=True, archived=True)
    return [first, second]


# --- export ---------------------------------------------------------------------------------------


def test_export_holds_every_message_of_every_branch(ann, ann_history):
    response = client_for(ann).get(EXPORT_URL)
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    document = response.json()
    assert document["version"] == 1
    assert document["exported_at"]
    first, second = document["conversations"]
    assert first["id"] == str(ann_history[0].id)
    assert first["title"] == "Squares"
    assert first["system_prompt"] == "Be brief."
    assert first["current_leaf_id"] == str(ann_history[0].current_leaf_id)
    assert len(first["messages"]) == 6
    message = first["messages"][1]
    assert set(message) >= {
        "id",
        "parent_id",
        "role",
        "content",
        "model",
        "status",
        "finish_reason",
        "created_at",
        "updated_at",
    }
    assert (message["role"], message["model"], message["parent_id"]) == (
        "assistant",
        "gpt-4o",
        first["messages"][0]["id"],
    )
    assert first["messages"][-1]["status"] == "stopped"
    assert (second["pinned"], second["archived"], second["parameters"]) == (True, True, {"temperature": 0.7})


def test_export_of_named_ids_only(ann, ann_history):
    document = client_for(ann).get(EXPORT_URL, {"ids": str(ann_history[1].id)}).json()
    assert [item["title"] for item in document["conversations"]] == ["Holiday"]
    bad = client_for(ann).get(EXPORT_URL, {"ids": "not-a-uuid"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"


def test_export_names_no_one_elses_conversation(ann, ben, ann_history):
    assert client_for(ben).get(EXPORT_URL).json()["conversations"] == []
    response = client_for(ben).get(EXPORT_URL, {"ids": str(ann_history[0].id)})
    assert response.status_code == 404


# --- our own format -------------------------------------------------------------------------------


def test_our_export_imported_into_the_same_account_duplicates_nothing(ann, ann_history):
    document = client_for(ann).get(EXPORT_URL).json()
    response = import_file(ann, document)
    assert response.status_code == 200, response.content
    assert response.json() == counts((0, 0), (2, 7))
    assert Conversation.objects.count() == 2
    assert Message.objects.count() == 7


def test_our_export_imported_into_another_account_is_a_copy_with_new_ids(ann, ben, ann_history):
    document = client_for(ann).get(EXPORT_URL).json()
    response = import_file(ben, document)
    assert response.status_code == 200, response.content
    assert response.json() == counts((2, 7), (0, 0))

    copies = {c.title: c for c in Conversation.objects.filter(owner=ben)}
    squares = copies["Squares"]
    assert squares.id != ann_history[0].id
    assert squares.imported_from == f"byok-chat:{ann_history[0].id}"
    assert (squares.model, squares.system_prompt) == ("gpt-4o", "Be brief.")
    assert squares.created_at == ann_history[0].created_at
    # the same branch is shown, through new rows whose parents were mapped
    assert shown(ben, squares.id) == shown(ann, ann_history[0].id)
    assert shown(ben, squares.id)[-1] == ("assistant", "if x % 2")
    ann_ids = set(Message.objects.filter(conversation__owner=ann).values_list("id", flat=True))
    ben_messages = Message.objects.filter(conversation__owner=ben)
    assert not ann_ids & set(ben_messages.values_list("id", flat=True))
    assert all(m.parent is None or m.parent.conversation_id == m.conversation_id for m in ben_messages)
    body = client_for(ben).get(f"/api/conversations/{squares.id}/").json()
    edited = body["messages"][2]
    assert len(edited["sibling_ids"]) == 2  # both branches came along
    holiday = copies["Holiday"]
    assert (holiday.pinned, holiday.archived, holiday.parameters) == (True, True, {"temperature": 0.7})
    assert ann_history[0].owner == ann  # ann's are untouched
    assert Conversation.objects.filter(owner=ann).count() == 2

    again = import_file(ben, document)
    assert again.json() == counts((0, 0), (2, 7))
    assert Conversation.objects.filter(owner=ben).count() == 2


def test_a_conversation_exported_while_streaming_imports_as_interrupted(ann, ben):
    conversation = conversation_create(owner=ann, title="Cut")
    question = message_add(conversation=conversation, parent=None, role=USER, content="Tell me")
    message_add(
        conversation=conversation,
        parent=question,
        role=ASSISTANT,
        content="Once",
        status=Message.Status.STREAMING,
    )
    document = client_for(ann).get(EXPORT_URL).json()
    assert import_file(ben, document).status_code == 200
    assert Message.objects.get(conversation__owner=ben, role=ASSISTANT).status == Message.Status.INTERRUPTED


def test_a_multipart_upload_imports_too(ann, ben, ann_history):
    document = client_for(ann).get(EXPORT_URL).json()
    upload = io.BytesIO(json.dumps(document).encode())
    upload.name = "conversations.json"
    response = client_for(ben).post(IMPORT_URL, {"file": upload}, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["imported"] == {"conversations": 2, "messages": 7}
    missing = client_for(ben).post(IMPORT_URL, {"other": "x"}, format="multipart")
    assert missing.status_code == 400
    assert "file" in missing.json()["fields"]


# --- ChatGPT --------------------------------------------------------------------------------------


def test_chatgpt_export_keeps_branches_and_the_current_node(ann):
    response = import_file(ann, load("chatgpt_conversations.json"))
    assert response.status_code == 200, response.content
    # 11 messages kept; skipped: a hidden system message, custom instructions, a tool call, its
    # output and a reasoning summary
    assert response.json() == counts((2, 11), (0, 5))

    squares = Conversation.objects.get(owner=ann, title="Squares in Python")
    assert squares.imported_from == "chatgpt:6650a1b2-0000-4000-8000-00000000c001"
    assert squares.model == "gpt-4o"
    assert squares.created_at.timestamp() == 1717400000.0
    assert shown(ann, squares.id) == [  # current_node: the first answer to the edited question
        ("user", "How do I square every number in a list in Python?"),
        ("assistant", "Use a list comprehension: `[x * x for x in numbers]`."),
        ("user", "And only the odd ones?"),
        ("assistant", "`[x * x for x in numbers if x % 2]`"),
    ]
    body = client_for(ann).get(f"/api/conversations/{squares.id}/").json()
    question, answer = body["messages"][2], body["messages"][3]
    assert len(question["sibling_ids"]) == 2  # "even" and "odd": the edit
    assert len(answer["sibling_ids"]) == 2  # the regenerated answer
    assert answer["model"] == "gpt-4o"
    other = client_for(ann).get(f"/api/conversations/{squares.id}/")  # the other branches are there
    assert other.status_code == 200
    regenerated = Message.objects.get(conversation=squares, content__startswith="Filter on")
    assert (regenerated.model, regenerated.finish_reason) == ("gpt-4o-mini", "length")
    switched = client_for(ann).patch(
        f"/api/conversations/{squares.id}/", {"current_leaf_id": question["sibling_ids"][0]}, format="json"
    )
    assert [m["content"] for m in switched.json()["messages"]][2:] == [
        "And only the even ones?",
        "`[x * x for x in numbers if x % 2 == 0]`",
    ]

    weather = Conversation.objects.get(owner=ann, title="Weather in Paris")
    assert weather.archived is True
    assert shown(ann, weather.id) == [
        ("user", "What's the weather in Paris today?"),
        ("assistant", "It is 18 °C and sunny in Paris today."),  # under the question: tool nodes skipped
        ("user", "[image not imported]\n\nWhat is in this photo?"),
        ("assistant", "A croissant on a café table."),
    ]


def test_chatgpt_export_imported_twice_duplicates_nothing(ann):
    import_file(ann, load("chatgpt_conversations.json"))
    again = import_file(ann, load("chatgpt_conversations.json"))
    assert again.json() == counts((0, 0), (2, 16))
    assert Conversation.objects.count() == 2
    assert Message.objects.count() == 11


def test_chatgpt_export_goes_into_each_account_once(ann, ben):
    import_file(ann, load("chatgpt_conversations.json"))
    response = import_file(ben, load("chatgpt_conversations.json"))
    assert response.json()["imported"] == {"conversations": 2, "messages": 11}


# --- chatbot-ui -----------------------------------------------------------------------------------


def test_chatbot_ui_export_imports_with_model_prompt_and_temperature(ann):
    response = import_file(ann, load("chatbot_ui_export.json"))
    assert response.status_code == 200, response.content
    assert response.json() == counts((2, 5), (0, 1))  # the empty answer is skipped
    haiku = Conversation.objects.get(owner=ann, title="Haiku about autumn")
    assert haiku.imported_from == "chatbot-ui:4f1c2d3e-aaaa-4bbb-8ccc-000000000001"
    assert (haiku.model, haiku.system_prompt) == ("gpt-4", "You are a poet who writes in English.")
    assert haiku.parameters == {"temperature": 0.9}
    assert [role for role, _ in shown(ann, haiku.id)] == ["user", "assistant", "user"]
    assert shown(ann, haiku.id)[1][1].startswith("Crisp leaves drift")
    again = import_file(ann, load("chatbot_ui_export.json"))
    assert again.json() == counts((0, 0), (2, 6))


def test_chatbot_ui_older_exports_and_its_export_old_data_file(ann):
    history = load("chatbot_ui_export.json")["history"]
    version_1 = [{"id": 7, "name": "Numbered", "messages": [{"role": "user", "content": "hi"}]}]
    assert import_file(ann, version_1).json()["imported"] == {"conversations": 1, "messages": 1}
    assert Conversation.objects.get(title="Numbered").imported_from == "chatbot-ui:7"
    # "Export old data" in today's chatbot-ui: every localStorage key, the history as a JSON string
    local_storage = {
        "conversationHistory": json.dumps(history[:1]),
        "selectedConversation": json.dumps(history[0]),
        "apiKey": "sk-not-kept-anywhere-0123456789",
        "folders": "[]",
    }
    response = import_file(ann, local_storage)
    assert response.json()["imported"] == {"conversations": 1, "messages": 3}
    assert not Conversation.objects.filter(system_prompt__contains="sk-not-kept").exists()
    # version 2: no version number; the same conversation again is skipped
    version_2 = {"history": history, "folders": []}
    assert import_file(ann, version_2).json() == counts((1, 2), (1, 4))


# --- bad files ------------------------------------------------------------------------------------


def _ours(ann_history_document: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(ann_history_document)


BAD_FILES = {
    "not an export": ({"hello": "world"}, "unknown_import_format", None),
    "a number": (42, "unknown_import_format", None),
    "a parent outside the file": (
        "ours: second conversation, parent_id unknown",
        "invalid_import",
        "parent_id",
    ),
    "a role we do not know": ("ours: second conversation, role tool", "invalid_import", "role"),
    "a loop of parents": ("chatgpt: a loop", "invalid_import", "parent"),
    "a chatgpt node that is not an object": ("chatgpt: a bad node", "invalid_import", "mapping"),
    "a chatgpt conversation without its tree": ("chatgpt: no mapping", "invalid_import", "mapping"),
    "a chatbot-ui message without text": ("chatbot-ui: content null", "invalid_import", "content"),
}


def _bad_document(recipe: Any, ours: dict[str, Any]) -> Any:
    if not isinstance(recipe, str):
        return recipe
    if recipe.startswith("ours"):
        document = copy.deepcopy(ours)
        message = document["conversations"][1]["messages"][0]
        if "parent_id" in recipe:
            message["parent_id"] = str(uuid.uuid4())
        else:
            message["role"] = "tool"
        return document
    if recipe.startswith("chatgpt"):
        document = load("chatgpt_conversations.json")
        mapping = document[1]["mapping"]
        if "loop" in recipe:
            mapping["c2-u1"]["parent"] = "c2-a2"
        elif "no mapping" in recipe:
            del document[1]["mapping"]
        else:
            mapping["c2-u1"] = ["not", "a", "node"]
        return document
    document = load("chatbot_ui_export.json")
    document["history"][1]["messages"][1]["content"] = None
    return document


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_file_is_a_400_saying_what_and_imports_nothing(ann, ben, ann_history, case):
    recipe, code, field = BAD_FILES[case]
    document = _bad_document(recipe, client_for(ann).get(EXPORT_URL).json())
    response = import_file(ben, document)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code
    assert body["message"]
    if field is not None:
        where = next(iter(body["fields"]))
        assert where.startswith("conversations[1]")  # which conversation
        assert field in where, where  # which field
        assert "conversations[1]" in body["message"]
    assert not Conversation.objects.filter(owner=ben).exists()  # the valid first one neither


def test_a_body_that_is_not_json_is_a_400(ann):
    response = client_for(ann).post(IMPORT_URL, b"{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_json"


# --- bounds ---------------------------------------------------------------------------------------


def test_too_many_conversations_in_one_file_is_a_400(ann, settings):
    settings.IMPORT_MAX_CONVERSATIONS = 1
    response = import_file(ann, load("chatgpt_conversations.json"))
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_conversations"
    assert not Conversation.objects.exists()


def test_a_message_too_long_in_a_file_is_a_400(ann, settings):
    settings.MESSAGE_MAX_CHARS = 40
    response = import_file(ann, load("chatgpt_conversations.json"))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "message_too_long"
    assert "Squares in Python" in body["message"]
    assert not Conversation.objects.exists()


def test_a_conversation_with_too_many_messages_in_a_file_is_a_400(ann, settings):
    settings.CONVERSATION_MAX_MESSAGES = 4
    response = import_file(ann, load("chatgpt_conversations.json"))
    assert response.status_code == 400
    assert response.json()["code"] == "conversation_too_long"
    assert not Conversation.objects.exists()


def test_a_file_past_import_max_bytes_is_a_413(ann, settings):
    settings.IMPORT_MAX_BYTES = 1000
    document = load("chatgpt_conversations.json")
    response = import_file(ann, document)
    assert response.status_code == 413
    assert response.json()["code"] == "import_too_large"
    upload = io.BytesIO(json.dumps(document).encode())
    upload.name = "conversations.json"
    response = client_for(ann).post(IMPORT_URL, {"file": upload}, format="multipart")
    assert response.status_code == 413
    assert not Conversation.objects.exists()


def test_the_body_limit_names_the_import_path():
    assert reverse("api-conversations-import") == IMPORT_PATH


def _post(url: str, body: bytes, token: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_over_asgi_an_import_may_exceed_max_request_bytes_up_to_import_max_bytes(
    live_asgi_server, transactional_db, settings
):
    user = make_user("cat")
    _, token = token_create(user=user, name="tests")
    body = (DATA / "chatgpt_conversations.json").read_bytes()  # ~12 KB
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 4096
    settings.IMPORT_MAX_BYTES = 64 * 1024
    status, answer = _post(live_asgi_server.url + IMPORT_URL, body, token)
    assert status == 200, answer
    assert answer["imported"]["conversations"] == 2
    status, answer = _post(live_asgi_server.url + "/api/conversations/", body, token)
    assert (status, answer["code"]) == (413, "request_too_large")  # any other path: the usual limit
    settings.IMPORT_MAX_BYTES = 8192
    status, answer = _post(live_asgi_server.url + IMPORT_URL, body, token)
    assert (status, answer["code"]) == (413, "import_too_large")


def test_a_logged_in_page_uploads_with_its_csrf_token(ann):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    client.get("/profile/settings/")  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    upload = io.BytesIO((DATA / "chatbot_ui_export.json").read_bytes())
    upload.name = "chatbot_ui_export.json"
    refused = client.post(IMPORT_URL, {"file": upload})
    assert refused.status_code == 403
    assert refused.json()["code"] == "csrf_failed"
    upload.seek(0)
    response = client.post(IMPORT_URL, {"file": upload}, headers={"X-CSRFToken": token})
    assert response.status_code == 200, response.content
    assert response.json()["imported"] == {"conversations": 2, "messages": 5}
