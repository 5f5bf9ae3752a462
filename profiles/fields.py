"""A text field that keeps its value encrypted at rest with the profile key ring.

Python code sees the plaintext (`profile.openai_api_key = "sk-..."`); the database column only ever
holds a Fernet token. A token the ring can no longer open loads as an `UnreadableSecret` instead of
raising, so a lost key surfaces as a clear message to its owner, not as a 500 on every page.
"""

from typing import Any, cast

from django.db import models

from . import crypto


class UnreadableSecret:
    """A stored token that no key in the ring decrypts. Saving it writes the token back unchanged."""

    __slots__ = ("token",)

    def __init__(self, token: str) -> None:
        self.token = token

    def __bool__(self) -> bool:
        return True  # something *is* stored; it just cannot be read

    def __repr__(self) -> str:
        return "<UnreadableSecret>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnreadableSecret) and other.token == self.token

    def __hash__(self) -> int:
        return hash(self.token)


class EncryptedTextField(models.TextField):
    """Encrypts on save, decrypts on load. Empty string means "nothing stored"."""

    def from_db_value(
        self, value: str | None, expression: Any, connection: Any
    ) -> str | UnreadableSecret | None:
        if not value:
            return value
        try:
            return crypto.decrypt(value)
        except crypto.InvalidToken:
            return UnreadableSecret(value)

    def get_prep_value(self, value: Any) -> Any:
        if isinstance(value, UnreadableSecret):
            return value.token
        value = super().get_prep_value(value)
        if not value:
            return value
        # Re-encrypting on every save also moves old rows to the newest ring key.
        return crypto.encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        # dumpdata / serializers get the ciphertext, never the plaintext.
        # What from_db_value / assignment put there; the stubs type it as the unbound TextField `_GT`
        # here (Django's Field takes no type parameters at run time, so this subclass cannot bind it).
        value = cast("str | UnreadableSecret | None", self.value_from_object(obj))
        if isinstance(value, UnreadableSecret):
            return value.token
        return crypto.encrypt(value) if value else ""
