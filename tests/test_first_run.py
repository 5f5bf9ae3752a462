"""A first run that is safe by default: `make run` writes a private .env with fresh secrets (never over
an existing one), and a server started on a development key says so once, at start-up."""

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
WARNING = "Running on a development key"


def first_run(env_file: Path) -> subprocess.CompletedProcess:
    """`python -m chatproject.first_run`, as the Makefile's run target calls it, on a file of the test's."""
    return subprocess.run(
        [sys.executable, "-m", "chatproject.first_run", "--env-file", str(env_file)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )


def values_of(env_file: Path) -> dict[str, str]:
    lines = env_file.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_first_run_writes_a_private_env_with_fresh_keys(tmp_path):
    env_file = tmp_path / ".env"
    run = first_run(env_file)
    assert run.stdout.count("\n") == 1 and f"Wrote {env_file}" in run.stdout  # said once, in one line
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600

    values = values_of(env_file)
    assert set(values) == {"SECRET_KEY", "PROFILE_ENCRYPTION_KEYS"}
    assert len(values["SECRET_KEY"]) >= 50 and values["SECRET_KEY"] != settings.DEVELOPMENT_SECRET_KEY
    ring = Fernet(values["PROFILE_ENCRYPTION_KEYS"])  # one valid Fernet key
    assert ring.decrypt(ring.encrypt(b"sk-test")) == b"sk-test"

    another = tmp_path / "another.env"
    first_run(another)
    assert not set(values.values()) & set(values_of(another).values())  # fresh every time


def test_an_existing_env_is_never_overwritten(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=mine\n")
    env_file.chmod(0o640)
    run = first_run(env_file)
    assert run.stdout == ""  # nothing to say
    assert env_file.read_text() == "SECRET_KEY=mine\n"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o640


def test_only_make_run_writes_the_env():
    """`make test` (and every other target) must not create a .env: only the run target calls it."""
    makefile = (ROOT / "Makefile").read_text()
    targets = re.split(r"\n(?=[a-z][\w-]*:)", makefile)
    calling = [target.split(":", 1)[0] for target in targets if "chatproject.first_run" in target]
    assert calling == ["run"]


# --- the start-up warning ------------------------------------------------------------------------


def start_server(**environment: str) -> str:
    """Import the ASGI application as uvicorn does, in a fresh process; what it logged."""
    env = {**os.environ, "DEBUG": "true", **environment}
    run = subprocess.run(
        [sys.executable, "-c", "import chatproject.asgi"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    return run.stderr


@pytest.mark.slow
def test_the_server_warns_once_at_start_up_on_a_development_key():
    logged = start_server(SECRET_KEY=settings.DEVELOPMENT_SECRET_KEY, PROFILE_ENCRYPTION_KEYS="")
    warnings = [line for line in logged.splitlines() if WARNING in line]
    assert len(warnings) == 1, logged
    assert " WARNING profiles.checks: " in warnings[0]
    assert "PROFILE_ENCRYPTION_KEYS is not set" in warnings[0]
    assert "SECRET_KEY is the public default" in warnings[0]

    only_the_ring = start_server(SECRET_KEY="x" * 60, PROFILE_ENCRYPTION_KEYS="")
    assert only_the_ring.count(WARNING) == 1 and "SECRET_KEY is the public default" not in only_the_ring


@pytest.mark.slow
def test_the_server_starts_quietly_on_its_own_keys():
    logged = start_server(SECRET_KEY="y" * 60, PROFILE_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    assert WARNING not in logged
