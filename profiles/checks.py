"""System checks for the key ring: a server without a usable ring must not start."""

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.management.base import SystemCheckError

from .crypto import key_ring_problems


@checks.register(checks.Tags.security)
def check_key_ring(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(
            problem.message,
            hint='Generate a key with: python -c "from cryptography.fernet import '
            'Fernet; print(Fernet.generate_key().decode())"',
            id="profiles.E001",
        )
        for problem in key_ring_problems(settings.PROFILE_ENCRYPTION_KEYS, debug=settings.DEBUG)
    ]


def raise_on_key_ring_errors() -> None:
    """Called at ASGI start-up: uvicorn runs no system checks by itself."""
    errors = check_key_ring()
    if errors:
        raise SystemCheckError("\n".join(f"{e.id}: {e.msg}" for e in errors))
