"""System checks: a server without a usable key ring must not start, one running on a development key
says so when it starts, and LOGIN_FAILURE_RATE must be a rate."""

import logging
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import SystemCheckError

from .crypto import SETTING, key_ring_problems
from .login_throttle import login_failure_rate

logger = logging.getLogger(__name__)


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


@checks.register(checks.Tags.security)
def check_login_failure_rate(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    try:
        login_failure_rate(settings.LOGIN_FAILURE_RATE)
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="profiles.E002")]
    return []


def raise_on_key_ring_errors() -> None:
    """Called at ASGI start-up: uvicorn runs no system checks by itself."""
    errors = check_key_ring()
    if errors:
        raise SystemCheckError("\n".join(f"{e.id}: {e.msg}" for e in errors))


def development_key_reasons() -> list[str]:
    """Why the server counts as running on a development key (empty: it does not)."""
    reasons = []
    if not settings.PROFILE_ENCRYPTION_KEYS:
        reasons.append(
            f"{SETTING} is not set, so stored OpenAI keys are encrypted with a key derived from SECRET_KEY "
            "(anyone holding the database and that SECRET_KEY can decrypt them)"
        )
    if getattr(settings, "DEVELOPMENT_SECRET_KEY", None) == settings.SECRET_KEY:
        reasons.append("SECRET_KEY is the public default written in settings.py")
    return reasons


def warn_on_development_key() -> None:
    """Called at ASGI start-up, once per worker process: one WARNING line if on a development key."""
    reasons = development_key_reasons()
    if reasons:
        logger.warning(
            "Running on a development key: %s. The first `make run` writes a .env with fresh ones; "
            "in production set both (docs/security.md, docs/deployment.md).",
            "; ".join(reasons),
        )
