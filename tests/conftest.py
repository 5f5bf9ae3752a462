"""Shared fixtures: a fake OpenAI server on loopback, the app under uvicorn, and a few users.

alice has a key and an organization, bob has none. Async tests use a transactional database:
the async ORM runs in other threads, which cannot see a test's uncommitted transaction.
"""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.core.cache import cache

from profiles.services import profile_for, profile_set_openai_key, profile_set_organization
from profiles.tokens import token_create
from tests.fake_openai import FakeOpenAI

# tests.leakcheck fails the run if a stored key shows up in any log line, response body or exception;
# tests.browser provides the browser_page fixture (headless Chromium); tests.usage_support writes the
# usage records still queued at the end of each test, before its database is emptied.
pytest_plugins = ["tests.leakcheck", "tests.browser", "tests.usage_support"]

# Fixed for the run so every thread (app server included) sees the same ring.
TEST_RING_KEYS = [Fernet.generate_key().decode()]
ALICE_KEY = "sk-alice-test-0123456789abcdefWXYZ"
ALICE_ORG = "org-alice123"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI, settings) -> FakeOpenAI:
    fake_openai_server.reset()
    settings.OPENAI_BASE_URL = fake_openai_server.base_url
    return fake_openai_server


@pytest.fixture(scope="session", autouse=True)
def _close_database_connections(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Before the test database is dropped, close what async tests left open: the async ORM runs on
    asgiref's shared thread, whose connection nothing closes (on PostgreSQL the drop then fails:
    "database is being accessed by other users"), and PostgreSQL's pool."""
    yield
    from asgiref.sync import SyncToAsync
    from django.db import connections

    with django_db_blocker.unblock():
        SyncToAsync.single_thread_executor.submit(connections.close_all).result()
        for connection in connections.all():
            if getattr(connection, "pool", None) is not None:
                connection.close_pool()


@pytest.fixture(scope="session", autouse=True)
async def _pooled_upstream_clients():
    """All async tests share one event loop, so one pooled client; close it at the end."""
    yield
    from upstream.client import aclose_pooled_clients

    await aclose_pooled_clients()


@pytest.fixture(autouse=True)
def _fresh_login_throttle() -> None:
    """Failed logins are counted per client address in the cache (profiles/login_throttle.py) and every
    test client comes from 127.0.0.1: each test starts with none counted."""
    cache.clear()


@pytest.fixture(autouse=True)
def _encryption_ring(settings) -> None:
    settings.PROFILE_ENCRYPTION_KEYS = TEST_RING_KEYS
    settings.OPENAI_MAX_RETRIES = 2
    settings.OPENAI_TIMEOUT = 5.0
    # The chat page would ask the upstream for its models on every load (the real OpenAI, unless the
    # test selected the fake): tests of the picker turn it on (tests/test_team_key.py).
    settings.CHAT_MODELS_FROM_UPSTREAM = False
    # PBKDF2's deliberate slowness (~0.3 s per user) buys tests nothing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def make_user(username: str, *, api_key: str | None = None, organization: str | None = None):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    profile = profile_for(user=user)
    if api_key:
        profile_set_openai_key(profile=profile, api_key=api_key)
    if organization:
        profile_set_organization(profile=profile, organization_id=organization)
    return user


@pytest.fixture
def alice(transactional_db):
    return make_user("alice", api_key=ALICE_KEY, organization=ALICE_ORG)


@pytest.fixture
def bob(transactional_db):
    return make_user("bob")


@pytest.fixture
def alice_token(alice) -> str:
    return token_create(user=alice, name="tests")[1]


@pytest.fixture
def bob_token(bob) -> str:
    return token_create(user=bob, name="tests")[1]


class LiveASGIServer:
    """The real ASGI app under uvicorn, in a thread, on a loopback port picked by the OS."""

    def __init__(self) -> None:
        from django.test import override_settings

        with override_settings(PROFILE_ENCRYPTION_KEYS=TEST_RING_KEYS):  # asgi.py checks the ring
            from chatproject.asgi import application

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(application, lifespan="on", log_level="warning", loop="asyncio", http="h11")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()  # tests count the tasks left on the server's loop
        await self.server.serve(sockets=[self.sock])

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_asgi_server() -> Iterator[LiveASGIServer]:
    server = LiveASGIServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def live_app(live_asgi_server: LiveASGIServer, fake_openai: FakeOpenAI, transactional_db) -> str:
    """Base URL of the app under uvicorn, with the fake upstream selected."""
    return live_asgi_server.url


# --- slow tests, and browser tests that could not run ----------------------------------------------

BROWSER_MISSING = "Chromium is not installed"  # the skip reason given by tests/browser.py


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Every browser test is also slow: `make test-fast` (-m "not slow") leaves them out. tryfirst so
    the mark is there before pytest's own -m deselection looks."""
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """After pytest's own summary (so it is the last thing before the totals): the browser tests that
    were skipped because Chromium is missing, and how to get it."""
    yield
    skipped = [
        report
        for report in terminalreporter.stats.get("skipped", [])
        if isinstance(report.longrepr, tuple) and BROWSER_MISSING in str(report.longrepr[2])
    ]
    if not skipped:
        return
    write = terminalreporter.write_line
    terminalreporter.section("browser tests did not run", sep="=", yellow=True, bold=True)
    count = len(skipped)
    write(
        f"{count} browser {'test' if count == 1 else 'tests'} did not run: Chromium is not installed.",
        yellow=True,
        bold=True,
    )
    write("They drive Debian's Chromium (/usr/bin/chromium, or CHROMIUM=/path/to/chromium) through")
    write("Playwright's Python package (installed with the test dependencies); Playwright's own browser")
    write("download is not used. To run them, install Chromium and run the tests again:")
    write("")
    write("    sudo apt-get install chromium      # as root: apt-get install chromium")
    write("    make test")
    write("")
    write("REQUIRE_BROWSER=1 (as in CI) makes a missing Chromium fail these tests instead of skipping them.")
