"""The suite-wide secret check (tests/leakcheck.py) catches what it should, and the obvious places
a key could slip out do not show it.

The check itself runs over the whole session: every log record, response body and view exception
of every test is searched for every key a test stored; one hit fails the run.
"""

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from django.test import AsyncClient

from profiles.models import Profile
from profiles.services import profile_openai_credentials
from tests.conftest import ALICE_KEY
from tests.fake_openai import Scenario
from tests.helpers import chat_body, post_chat
from tests.leakcheck import DETECTOR, LeakDetector, mask

ROOT = Path(__file__).resolve().parent.parent
PLANTED = "sk-planted-leak-0123456789abcdef"


def test_detector_finds_a_key_and_reports_it_masked():
    detector = LeakDetector()
    detector.add_secret(PLANTED)
    detector.add_secret("short")  # too short to search for without false alarms
    detector.record("log records", "log record chat:WARNING", f"upstream said: key {PLANTED} is wrong")
    detector.record("response bodies", "response body POST /x -> 400", b'{"message": "fine"}')
    [leak] = detector.leaks()
    assert leak.source == "log record chat:WARNING"
    assert PLANTED not in str(leak) and mask(PLANTED) in str(leak)
    assert detector.secrets == {PLANTED}


def test_every_stored_key_is_looked_for(alice):
    assert ALICE_KEY in DETECTOR.secrets  # registered by the post_save hook, as every test's keys are


@pytest.mark.django_db(transaction=True)
async def test_credentials_never_show_the_key_even_in_a_traceback(alice):
    credentials = profile_openai_credentials(profile=await Profile.objects.aget(user=alice))
    assert ALICE_KEY not in repr(credentials) and ALICE_KEY not in str(credentials)


@pytest.mark.django_db(transaction=True)
async def test_upstream_messages_quoting_the_key_are_redacted(fake_openai, alice_token, caplog):
    caplog.set_level(logging.DEBUG)
    fake_openai.scenario = Scenario(
        status=400, error={"message": f"Bad request with key {ALICE_KEY}.", "type": "invalid_request_error"}
    )
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 400
    assert ALICE_KEY.encode() not in content
    assert ALICE_KEY not in caplog.text


PLANTED_TESTS = textwrap.dedent(f'''
    import logging

    import pytest
    from django.test import Client

    from tests import leakcheck


    def test_a_log_line_leaks():
        leakcheck.register_secret("{PLANTED}")
        logging.getLogger("upstream.errors").warning("upstream rejected {PLANTED}")


    @pytest.mark.django_db
    def test_a_response_body_leaks():
        # Stands in for a key: text the chat API really puts in a response body.
        leakcheck.register_secret("Authentication required: log in")
        assert Client().post("/api/chat/openai", b"{{}}", content_type="application/json").status_code == 401
''')


@pytest.mark.slow
def test_a_planted_leak_fails_the_run(tmp_path):
    """Run pytest on two tests that leak (both pass on their own): the run must fail and say where."""
    planted = tmp_path / "test_planted.py"
    planted.write_text(PLANTED_TESTS)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.leakcheck",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            "-q",
            str(planted),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        },  # not the outer run's database
    )
    output = run.stdout + run.stderr
    assert "2 passed" in output, output
    assert run.returncode == 1, output
    assert "SECRET LEAK" in output
    assert "found in log record upstream.errors:WARNING" in output
    assert "found in response body POST /api/chat/openai -> 401" in output
    assert PLANTED not in output  # the report masks what it found


@pytest.mark.slow
def test_a_clean_run_passes(tmp_path):
    clean = tmp_path / "test_clean.py"
    clean.write_text(
        "import logging\n\ndef test_quiet():\n    logging.getLogger('chat').warning('nothing secret')\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.leakcheck",
            "-p",
            "no:cacheprovider",
            "-c",
            str(ROOT / "pyproject.toml"),
            "--rootdir",
            str(ROOT),
            "-q",
            str(clean),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "secret leak check: clean" in run.stdout
