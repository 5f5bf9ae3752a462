"""The statements behind every answer (answers.py), as plain SQL run with a cursor.

The ORM builds and compiles a query on every call: on SQLite that is ~300 µs of CPU for each of an
answer's reads and writes, against ~30-50 µs to run the statement (measured in-process: the
conversation, its tree, the branch's text, the start, the end). An answer makes about six, so the
ORM alone would cost more than the whole budget of a saved answer (docs/performance.md). The SQL
here is that of the ORM's own statements, written once, with Django's quoting
(`connection.ops.quote_name`) and value preparation (`Field.get_db_prep_save`), and rows read back
through the fields' own converters (core.django_internals.converted_row), so what is written and
read is what the ORM would write and read, on SQLite and PostgreSQL alike.
"""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connections, router
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

from core.django_internals import columns_of, converted_row

from .models import Conversation, Message

CONVERSATION_COLUMNS = ("title", "model", "system_prompt", "parameters", "current_leaf_id")
TREE_COLUMNS = ("id", "parent_id", "role")
TEXT_COLUMNS = ("id", "role", "content")


def connection_for_answers() -> BaseDatabaseWrapper:
    return connections[router.db_for_write(Message)]


@cache
def _by_attname(model: type[Model]) -> dict[str, Field]:
    return {field.attname: field for field in model._meta.concrete_fields}


def _fields(model: type[Model], attnames: Iterable[str]) -> list[Field]:
    by_attname = _by_attname(model)
    return [by_attname[name] for name in attnames]


def _column(field: Field, connection: BaseDatabaseWrapper) -> str:
    assert field.column is not None  # (concrete fields only)
    return connection.ops.quote_name(field.column)


def _select(model: type[Model], attnames: tuple[str, ...], connection: BaseDatabaseWrapper) -> str:
    qn = connection.ops.quote_name
    columns = ", ".join(_column(field, connection) for field in _fields(model, attnames))
    return f"SELECT {columns} FROM {qn(model._meta.db_table)}"


def _prep(model: type[Model], attname: str, value: Any, connection: BaseDatabaseWrapper) -> Any:
    return _fields(model, (attname,))[0].get_db_prep_save(value, connection)


@dataclass(frozen=True, slots=True)
class ConversationRow:
    title: str
    model: str
    system_prompt: str
    parameters: Any
    current_leaf_id: uuid.UUID | None


def conversation_row(
    *, connection: BaseDatabaseWrapper, conversation_id: uuid.UUID, owner_id: int
) -> ConversationRow | None:
    """The owner's conversation (None: no such conversation, or another user's)."""
    qn = connection.ops.quote_name
    sql = (
        f"{_select(Conversation, CONVERSATION_COLUMNS, connection)} "
        f"WHERE {qn('id')} = %s AND {qn('owner_id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_prep(Conversation, "id", conversation_id, connection), owner_id])
        row = cursor.fetchone()
    if row is None:
        return None
    values = converted_row(row, columns_of(_fields(Conversation, CONVERSATION_COLUMNS)), connection)
    return ConversationRow(*values)


# Message ids as the database gives them back (a 32-digit hex string on SQLite, a UUID on PostgreSQL):
# the tree is walked in these, and only the few ids an answer hands on are made UUIDs (db_uuid).
# Converting every id of a conversation through the fields' converters costs ~10 µs a message.
DbId = Any


def db_id(value: uuid.UUID, connection: BaseDatabaseWrapper) -> DbId:
    """A UUID in the form the database gives ids back."""
    return _prep(Message, "id", value, connection)


def db_uuid(value: DbId) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(value)


def tree_rows(*, connection: BaseDatabaseWrapper, conversation_id: uuid.UUID) -> list[tuple[DbId, DbId, str]]:
    """(id, parent_id, role) of every message of the conversation, oldest first (ids: db_id's form)."""
    qn = connection.ops.quote_name
    sql = (
        f"{_select(Message, TREE_COLUMNS, connection)} WHERE {qn('conversation_id')} = %s "
        f"ORDER BY {qn('created_at')}, {qn('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [_prep(Conversation, "id", conversation_id, connection)])
        return cursor.fetchall()


def message_texts(*, connection: BaseDatabaseWrapper, ids: list[DbId]) -> dict[DbId, tuple[str, str]]:
    """role and content of these messages, by id (db_id's form both ways)."""
    if not ids:
        return {}
    qn = connection.ops.quote_name
    placeholders = ", ".join(["%s"] * len(ids))
    sql = f"{_select(Message, TEXT_COLUMNS, connection)} WHERE {qn('id')} IN ({placeholders})"
    with connection.cursor() as cursor:
        cursor.execute(sql, ids)
        return {message_id: (role, content) for message_id, role, content in cursor.fetchall()}


def messages_insert(*, connection: BaseDatabaseWrapper, messages: list[Message]) -> None:
    """INSERT the messages, every column, in one statement."""
    qn = connection.ops.quote_name
    fields = list(Message._meta.concrete_fields)
    columns = ", ".join(_column(field, connection) for field in fields)
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = f"INSERT INTO {qn(Message._meta.db_table)} ({columns}) VALUES {', '.join([row] * len(messages))}"
    params = [
        field.get_db_prep_save(getattr(message, field.attname), connection)
        for message in messages
        for field in fields
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def row_update(
    *,
    connection: BaseDatabaseWrapper,
    model: type[Model],
    pk: uuid.UUID,
    changes: dict[str, Any],
    where: dict[str, Any] | None = None,
) -> int:
    """UPDATE one row's columns (by attname); `where`: more conditions (attname = value). The
    number of rows changed."""
    qn = connection.ops.quote_name
    assignments = _fields(model, changes)
    conditions = _fields(model, ("id", *(where or {})))
    sql = (
        f"UPDATE {qn(model._meta.db_table)} "
        f"SET {', '.join(f'{_column(field, connection)} = %s' for field in assignments)} "
        f"WHERE {' AND '.join(f'{_column(field, connection)} = %s' for field in conditions)}"
    )
    values = [*changes.values(), pk, *(where or {}).values()]
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip([*assignments, *conditions], values, strict=True)
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
