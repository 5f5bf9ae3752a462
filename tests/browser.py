"""Playwright fixtures for the browser tests: real headless Chromium against the app under uvicorn.

Debian's Chromium (/usr/bin/chromium, or CHROMIUM=...) is used; Playwright cannot download its own
here. Without it the browser tests skip, unless REQUIRE_BROWSER=1 (CI), which makes them fail.

Playwright's sync API marks its own event loop as the thread's running loop between calls, which
makes Django's ORM refuse to run in the test's thread (SynchronousOnlyOperation). So Playwright is
started per test, after the database fixtures, and stopped before them; database reads inside a
test go through `off_thread()`.
"""

import os
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from django.db import connections

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# This machine has no network but loopback: without the background-networking flags Chromium keeps
# trying (and failing) to reach its own services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 820}


def chromium_path() -> str | None:
    candidate = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return candidate if os.path.exists(candidate) else None


def _unavailable(reason: str) -> None:
    if os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def off_thread[T](call: Callable[[], T]) -> T:
    """Run a database call in another thread (see the module docstring). The thread's connection is
    closed after it: on PostgreSQL that gives it back to the pool (DB_POOL_SIZE), which a thread that
    just ends never does, so a dozen calls would exhaust it."""

    def run() -> T:
        try:
            return call()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


class PageProblems:
    """Script errors and CSP violations seen by a page: a test fails if any occurred."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def console(self, message: Any) -> None:
        text = message.text
        if message.type == "error" and "Content Security Policy" in text:
            self.items.append(f"CSP: {text}")

    def page_error(self, error: Any) -> None:
        self.items.append(f"page error: {error}")


@pytest.fixture
def browser_page(live_app: str) -> Iterator[Any]:
    """A fresh page in headless Chromium (its own cookies), with no script error or CSP violation allowed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed")
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed (apt-get install chromium)")

    problems = PageProblems()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport=VIEWPORT, base_url=live_app, color_scheme="light")
        context.set_default_timeout(10_000)
        page = context.new_page()
        page.on("console", problems.console)
        page.on("pageerror", problems.page_error)
        try:
            yield page
        finally:
            context.close()
            browser.close()
    assert not problems.items, problems.items


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def log_in(page: Any, username: str, password: str) -> None:
    """Log in through the login page, as a person would; lands on the chat page."""
    page.goto("/")
    page.wait_for_url("**/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/")
    page.wait_for_selector("#chat[data-ready=true]")
