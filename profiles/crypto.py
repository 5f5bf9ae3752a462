"""The Fernet key ring that encrypts stored OpenAI keys.

`PROFILE_ENCRYPTION_KEYS` lists Fernet keys newest first: the first encrypts, every one decrypts,
so a key can be rotated in without losing what the old one encrypted. With DEBUG on and no keys set,
a development key is derived from SECRET_KEY so a fresh checkout works (the server warns at start-up:
profiles/checks.py).
"""

import base64
import functools
from dataclasses import dataclass

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

SETTING = "PROFILE_ENCRYPTION_KEYS"


class KeyRingError(Exception):
    """The configured ring cannot be used (no keys outside DEBUG, or a malformed key)."""


@dataclass(frozen=True)
class KeyRingProblem:
    """One thing wrong with the configured ring, named so an operator can find it."""

    message: str


def key_ring_problems(keys: list[str], *, debug: bool) -> list[KeyRingProblem]:
    problems = [
        KeyRingProblem(
            f"{SETTING} entry #{position} (of {len(keys)}) is not a valid Fernet key: "
            "it must be 32 url-safe base64-encoded bytes."
        )
        for position, key in enumerate(keys, start=1)
        if not _is_fernet_key(key)
    ]
    if not keys and not debug:
        problems.append(KeyRingProblem(f"{SETTING} is empty: with DEBUG off, set at least one Fernet key."))
    return problems


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.strip())
    except (ValueError, TypeError):
        return False
    return True


def _development_key(secret_key: str) -> bytes:
    # HKDF rather than a plain hash: a distinct, domain-separated key, never SECRET_KEY itself.
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"profiles.openai-key-ring.dev"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@functools.lru_cache(maxsize=8)
def _ring_for(keys: tuple[str, ...], secret_key: str, debug: bool) -> MultiFernet:
    problems = key_ring_problems(list(keys), debug=debug)
    if problems:
        raise KeyRingError(" ".join(p.message for p in problems))
    if not keys:
        return MultiFernet([Fernet(_development_key(secret_key))])
    return MultiFernet([Fernet(key.strip()) for key in keys])


def key_ring() -> MultiFernet:
    """The ring for the current settings; built once per distinct configuration (cached)."""
    return _ring_for(tuple(settings.PROFILE_ENCRYPTION_KEYS), settings.SECRET_KEY, settings.DEBUG)


def encrypt(plaintext: str) -> str:
    return key_ring().encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Raises InvalidToken when no key in the ring can open it."""
    return key_ring().decrypt(token.encode("ascii")).decode()


def reencrypt(token: str) -> str:
    """The same secret under the newest key (MultiFernet.rotate); raises InvalidToken."""
    return key_ring().rotate(token.encode("ascii")).decode("ascii")


__all__ = ["InvalidToken", "KeyRingError", "decrypt", "encrypt", "key_ring", "key_ring_problems", "reencrypt"]
