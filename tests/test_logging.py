"""Logs: one line per event, and a caller's ordinary mistake (a 4xx) is not a WARNING."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# A fresh process: logging is configured once, at django.setup(), from the settings as they are then.
SCRIPT = textwrap.dedent("""
    import django
    django.setup()
    from django.test import Client
    Client().get("/api/no-such-endpoint/", HTTP_HOST="127.0.0.1")
    Client().get("/no-such-page/", HTTP_HOST="127.0.0.1")
""")


@pytest.mark.slow
def test_a_4xx_is_one_info_line_with_debug_on_and_off():
    for debug in ("true", "false"):
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "chatproject.settings",
            "DEBUG": debug,
            "PROFILE_ENCRYPTION_KEYS": "3q2-7wVYe6j9b2BBqFuGzTrkYo6GkS7Uxj6PZJkfvzA=",
            "SECRET_KEY": "x" * 50,
            "SECURE_SSL_REDIRECT": "false",
        }
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        lines = result.stderr.splitlines()
        for path in ("/api/no-such-endpoint/", "/no-such-page/"):
            about = [line for line in lines if path in line]
            assert len(about) == 1, (debug, lines)
            assert " INFO django.request: Not Found: " in about[0], about
