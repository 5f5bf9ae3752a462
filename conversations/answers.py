"""An answer added to a conversation, in the database: what is read before the upstream is called
(the branch it follows, the history sent), then its writes as it streams (its start, its text so
far, its end), and a stop asked for from another worker.

Sync functions, each a few statements (answer_sql.py: plain SQL, as the ORM would write it, without
its ~300 µs per call): conversations/streaming.py runs them off the event loop.

Nothing is written before the upstream has answered: a request refused before its answer starts
(no key, an unknown model, the stream cap) leaves the conversation as it was, the question
included; the client still has it and sends it again. From then on the question and the answer
are in the database, and the answer's text follows as it streams.
"""

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from core.errors import ApiError

from .answer_sql import (
    DbId,
    connection_for_answers,
    conversation_row,
    db_id,
    db_uuid,
    message_texts,
    messages_insert,
    row_update,
    tree_rows,
)
from .models import Conversation, Message
from .selectors import conversation_for, conversation_not_found, message_for, message_not_found
from .services import conversation_full, title_from_first_question

STREAMING = Message.Status.STREAMING


@dataclass(slots=True)
class AnswerPlan:
    """What answering will write, decided before the upstream is called (nothing saved yet)."""

    owner_id: int
    conversation_id: uuid.UUID
    title: str  # the conversation's title once the answer starts
    title_from_question: bool  # set from this question just now: an auto title may replace it
    question: Message | None  # the new user message (None: regenerating an answer to an old one)
    answer: Message  # the new assistant message, `streaming`
    history: list[dict[str, Any]]  # the messages sent upstream: system prompt, branch, question
    model: str
    temperature: float | None
    question_sibling_ids: list[uuid.UUID] = field(default_factory=list)
    answer_sibling_ids: list[uuid.UUID] = field(default_factory=list)
    conversation_changes: dict[str, Any] = field(default_factory=dict)


def answer_plan(
    *,
    owner: AbstractBaseUser,
    conversation_id: uuid.UUID,
    content: str | None,
    parent_id: uuid.UUID | None,
    parent_given: bool,
    model: str | None,
    temperature: float | None,
) -> AnswerPlan:
    """Read what answering needs (three queries: the conversation, its tree's shape, the branch's
    messages) and decide what it will write. Raises ApiError: 404 (not the caller's conversation,
    no such parent), 400 (regenerating something that is not a question, a full conversation).

    With `content`: a question under `parent_id` (not given: the current leaf; None: a new root, the
    first question edited), then its answer. Without: a new answer to `parent_id`, a user message
    (not given: the last question of the current branch).
    """
    connection = connection_for_answers()
    conversation = conversation_row(connection=connection, conversation_id=conversation_id, owner_id=owner.pk)
    if conversation is None:
        raise conversation_not_found()
    tree = _Tree(tree_rows(connection=connection, conversation_id=conversation_id))
    adding = 2 if content is not None else 1
    if len(tree.parents) + adding > settings.CONVERSATION_MAX_MESSAGES:
        raise conversation_full()
    leaf = conversation.current_leaf_id and db_id(conversation.current_leaf_id, connection)
    if leaf not in tree.parents:
        leaf = tree.newest

    parent = parent_id and db_id(parent_id, connection)
    if parent_given and parent is not None and parent not in tree.parents:
        error = message_not_found()
        error.fields = {"parent_id": "No message with this id in this conversation."}
        raise error
    branch_end = parent if parent_given else leaf
    path = tree.path_to(branch_end) if branch_end is not None else []
    if content is None:  # regenerate: the new answer goes under a question
        if not parent_given:  # the current branch's last question
            while path and tree.roles[path[-1]] != Message.Role.USER:
                path.pop()
        if not path or tree.roles[path[-1]] != Message.Role.USER:
            raise ApiError(
                400,
                "not_a_question",
                "Without content, parent_id must name a user message: the question to answer again."
                if parent_given
                else "This conversation has no question to answer again.",
                fields={"parent_id": "Must be a user message of this conversation."},
            )
    texts = message_texts(connection=connection, ids=path)
    branch = [(message_id, *texts[message_id]) for message_id in path if message_id in texts]
    now = timezone.now()
    history: list[dict[str, Any]] = []
    if conversation.system_prompt:
        history.append({"role": Message.Role.SYSTEM, "content": conversation.system_prompt})
    # Answers that ended with nothing (an error) are left out; a cut-off answer goes as it was kept.
    history += [{"role": role, "content": text} for _, role, text in branch if text]

    model = model or conversation.model or settings.CHAT_MODELS[0]
    if temperature is None:
        parameters = conversation.parameters if isinstance(conversation.parameters, dict) else {}
        kept = parameters.get("temperature")
        temperature = kept if isinstance(kept, (int, float)) and not isinstance(kept, bool) else None

    question: Message | None = None
    answer_parent: uuid.UUID
    question_siblings: list[uuid.UUID] = []
    if content is not None:
        question_parent = branch[-1][0] if branch else None
        question = Message(
            id=uuid.uuid4(),
            conversation_id=conversation_id,
            parent_id=question_parent and db_uuid(question_parent),
            role=Message.Role.USER,
            content=content,
            status=Message.Status.COMPLETE,
            created_at=now,
            updated_at=now,
        )
        history.append({"role": Message.Role.USER, "content": content})
        question_siblings = [*map(db_uuid, tree.children.get(question_parent, [])), question.id]
        answer_parent = question.id
        answer_siblings: list[uuid.UUID] = []
    else:
        answer_parent = db_uuid(branch[-1][0])
        answer_siblings = [*map(db_uuid, tree.children.get(branch[-1][0], []))]
    later = now + timedelta(microseconds=1)  # the answer sorts after its question
    answer = Message(
        id=uuid.uuid4(),
        conversation_id=conversation_id,
        parent_id=answer_parent,
        role=Message.Role.ASSISTANT,
        content="",
        model=model,
        status=STREAMING,
        created_at=later,
        updated_at=later,
    )
    changes: dict[str, Any] = {"current_leaf_id": answer.id, "updated_at": later}
    title_from_question = False
    title = conversation.title
    if not title and content is not None:
        title = title_from_first_question(content)
        title_from_question = bool(title)
        changes["title"] = title
    if model != conversation.model:
        changes["model"] = model  # what the next message uses when it names none
    return AnswerPlan(
        owner_id=owner.pk,
        conversation_id=conversation_id,
        title=title,
        title_from_question=title_from_question,
        question=question,
        answer=answer,
        history=history,
        model=model,
        temperature=temperature,
        question_sibling_ids=question_siblings,
        answer_sibling_ids=[*answer_siblings, answer.id],
        conversation_changes=changes,
    )


class _Tree:
    """A conversation's message tree from its (id, parent_id, role) rows, oldest first; ids in the
    database's own form (answer_sql.db_id)."""

    def __init__(self, rows: list[tuple[DbId, DbId, str]]) -> None:
        self.parents: dict[DbId, DbId] = {}
        self.children: dict[DbId, list[DbId]] = {}  # None: the roots
        self.roles: dict[DbId, str] = {}
        for message_id, parent_id, role in rows:
            self.parents[message_id] = parent_id
            self.children.setdefault(parent_id, []).append(message_id)
            self.roles[message_id] = role
        self.newest: DbId = rows[-1][0] if rows else None

    def path_to(self, leaf: DbId) -> list[DbId]:
        """Root .. leaf (bounded, even if a cycle slipped in)."""
        path: list[DbId] = []
        node = leaf
        while node is not None and len(path) <= len(self.parents):
            path.append(node)
            node = self.parents.get(node)
        path.reverse()
        return path


def answer_start(*, plan: AnswerPlan) -> None:
    """Save the question (if any) and the answer as `streaming`, and make it the conversation's
    current leaf: one transaction, three statements. ApiError(404) if the conversation was deleted
    in the meantime."""
    new = [plan.question, plan.answer] if plan.question is not None else [plan.answer]
    connection = connection_for_answers()
    with transaction.atomic(using=connection.alias):
        messages_insert(connection=connection, messages=new)
        changed = row_update(
            connection=connection,
            model=Conversation,
            pk=plan.conversation_id,
            changes=plan.conversation_changes,
        )
        if not changed:
            raise conversation_not_found()


def answers_flush(*, texts: list[tuple[uuid.UUID, str | None]]) -> set[uuid.UUID]:
    """Write the text so far of streaming answers (None: no new text, updated_at only, which also
    says their worker is alive), in one transaction. The ids of those still streaming: any other was
    stopped through another worker (answer_stop_elsewhere), or its conversation deleted."""
    streaming: set[uuid.UUID] = set()
    now = timezone.now()
    connection = connection_for_answers()
    with transaction.atomic(using=connection.alias):
        for message_id, content in texts:
            changes: dict[str, Any] = {"updated_at": now}
            if content is not None:
                changes["content"] = content
            where = {"status": STREAMING}
            if row_update(connection=connection, model=Message, pk=message_id, changes=changes, where=where):
                streaming.add(message_id)
    return streaming


def answer_end(*, message_id: uuid.UUID, fields: dict[str, Any]) -> None:
    """The answer's last write: all its text, how it ended, its timings."""
    row_update(connection=connection_for_answers(), model=Message, pk=message_id, changes=fields)


def answer_stop_elsewhere(
    *, owner: AbstractBaseUser, conversation_id: uuid.UUID, message_id: uuid.UUID
) -> tuple[Message, list[uuid.UUID], bool]:
    """Mark a streaming answer `stopped` for the worker that streams it, which sees it at its next
    write (answers_flush) and cancels the upstream. The message as it is now, its sibling ids, and
    whether it was still streaming. ApiError(404) for a message that is not the caller's, 400 for a
    question."""
    conversation = conversation_for(owner=owner, conversation_id=conversation_id)
    message = message_for(conversation=conversation, message_id=message_id)
    if message.role != Message.Role.ASSISTANT:
        raise ApiError(400, "not_an_answer", "Only an answer can be stopped; this message is a question.")
    siblings = list(
        Message.objects.filter(conversation_id=conversation.pk, parent_id=message.parent_id)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    )
    if message.status != STREAMING:
        return message, siblings, False
    now = timezone.now()
    stopped = Message.objects.filter(pk=message.pk, status=STREAMING).update(
        status=Message.Status.STOPPED, updated_at=now
    )
    if stopped:
        message.status, message.updated_at = Message.Status.STOPPED, now
    return message, siblings, bool(stopped)


def title_replace(*, conversation_id: uuid.UUID, title: str, replaces: str) -> bool:
    """Set a generated title, unless the title changed since it was set from the question (a rename
    wins). Not `updated_at`: that orders the list by activity."""
    rows = Conversation.objects.filter(pk=conversation_id, title=replaces).update(title=title)
    return rows == 1
