"""Suite-wide check that no stored OpenAI key ever leaves the server (a pytest plugin).

For the whole session it keeps what the application produced:
- every log record of every logger, formatted with its traceback (a LogRecord factory, so loggers
  that do not propagate to the root, like uvicorn's, are seen too);
- every response body that leaves Django (`BaseHandler.get_response[_async]`: the test clients,
  and the live uvicorn server; streamed bodies are recorded as they pass);
- the text and traceback of every exception a view raised (`got_request_exception`);
- output of subprocesses a test ran (`record(source, text)`).
and every OpenAI key a test stored (each `Profile` saved with a key, plus the fixtures' keys).
At the end it looks for each key in everything kept; one hit fails the run (exit status 1) with
a report that says where, with the key masked.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field

import pytest

# Shorter "keys" (a test storing "abc") would match ordinary text; real OpenAI keys are 40+ chars.
MIN_SECRET_LENGTH = 12
EXCERPT = 60


def mask(secret: str) -> str:
    return f"{secret[:6]}...{secret[-2:]}" if len(secret) > 10 else "***"


@dataclass
class Leak:
    source: str
    secret: str
    excerpt: str

    def __str__(self) -> str:
        return f"stored key {mask(self.secret)} found in {self.source}: ...{self.excerpt}..."


@dataclass
class LeakDetector:
    secrets: set[str] = field(default_factory=set)
    texts: list[tuple[str, str]] = field(default_factory=list)  # (source, text)
    counts: dict[str, int] = field(default_factory=dict)

    def add_secret(self, secret: object) -> None:
        if isinstance(secret, str) and len(secret.strip()) >= MIN_SECRET_LENGTH:
            self.secrets.add(secret.strip())

    def record(self, kind: str, source: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        self.texts.append((source, text))
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def leaks(self) -> list[Leak]:
        if not self.secrets:
            return []
        pattern = re.compile("|".join(re.escape(s) for s in sorted(self.secrets, key=len, reverse=True)))
        found = []
        for source, text in self.texts:
            for match in pattern.finditer(text):
                secret = match.group()
                before = text[max(0, match.start() - EXCERPT) : match.start()]
                after = text[match.end() : match.end() + EXCERPT]
                found.append(Leak(source, secret, f"{before}<{mask(secret)}>{after}"))
        return found

    def summary(self) -> str:
        seen = ", ".join(f"{n} {kind}" for kind, n in sorted(self.counts.items())) or "nothing"
        return f"{len(self.secrets)} stored keys looked for in {seen}"


DETECTOR = LeakDetector()


def register_secret(secret: str) -> None:
    DETECTOR.add_secret(secret)


def record(source: str, text: str | bytes) -> None:
    """Add output that does not pass through logging or Django (a command, a subprocess) to the check."""
    DETECTOR.record("command outputs", source, text)


# --- what the application produces ---------------------------------------------------------------


def _install_log_capture() -> None:
    base_factory = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = base_factory(*args, **kwargs)
        try:
            text = record.getMessage()
        except Exception:  # a bad format string: logging reports it itself at emit time
            text = f"{record.msg!r} % {record.args!r}"
        if record.exc_info and record.exc_info[0] is not None:
            text += "\n" + formatter.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + record.stack_info
        DETECTOR.record("log records", f"log record {record.name}:{record.levelname}", text)
        return record

    logging.setLogRecordFactory(factory)


async def _recorded_async(content: AsyncIterator[bytes], parts: list[bytes]) -> AsyncIterator[bytes]:
    async for chunk in content:
        parts.append(chunk)
        yield chunk


def _recorded_sync(content: Iterable[bytes], parts: list[bytes]) -> Iterator[bytes]:
    for chunk in content:
        parts.append(chunk)
        yield chunk


def _record_response(request, response) -> None:
    from django.http import FileResponse

    source = f"response body {request.method} {request.path} -> {response.status_code}"
    if not getattr(response, "streaming", False):
        DETECTOR.record("response bodies", source, response.content)
    elif not isinstance(response, FileResponse):  # static files hold no keys
        parts: list[bytes] = []
        if response.is_async:
            response.streaming_content = _recorded_async(response.streaming_content, parts)
        else:
            response.streaming_content = _recorded_sync(response.streaming_content, parts)
        _streams.append((source, parts))  # joined at the end: chunks arrive until the stream ends
        DETECTOR.counts["response bodies"] = DETECTOR.counts.get("response bodies", 0) + 1


_streams: list[tuple[str, list[bytes]]] = []


def _install_response_capture() -> None:
    from django.core.handlers.base import BaseHandler

    get_response, get_response_async = BaseHandler.get_response, BaseHandler.get_response_async

    def recording_get_response(self, request):
        response = get_response(self, request)
        _record_response(request, response)
        return response

    async def recording_get_response_async(self, request):
        response = await get_response_async(self, request)
        _record_response(request, response)
        return response

    BaseHandler.get_response = recording_get_response
    BaseHandler.get_response_async = recording_get_response_async


def _install_secret_and_exception_hooks() -> None:
    from django.core.signals import got_request_exception
    from django.db.models.signals import post_save

    from profiles.models import Profile, TeamKey

    def on_profile_saved(sender, instance, **kwargs) -> None:
        register_secret(instance.openai_api_key)

    def on_exception(sender, request=None, **kwargs) -> None:
        path = getattr(request, "path", "?")
        DETECTOR.record("exception texts", f"exception raised by a view ({path})", traceback.format_exc())

    post_save.connect(on_profile_saved, sender=Profile, weak=False, dispatch_uid="leakcheck.profile")
    post_save.connect(on_profile_saved, sender=TeamKey, weak=False, dispatch_uid="leakcheck.team_key")
    got_request_exception.connect(on_exception, weak=False, dispatch_uid="leakcheck.exception")


# --- pytest hooks ---------------------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    _install_log_capture()
    _install_response_capture()
    _install_secret_and_exception_hooks()
    try:
        from tests.conftest import ALICE_KEY
    except ImportError:  # the plugin used on its own (its self-test)
        pass
    else:
        register_secret(ALICE_KEY)


_found: list[Leak] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for source, parts in _streams:
        DETECTOR.texts.append((source, b"".join(parts).decode("utf-8", "replace")))
    _streams.clear()
    _found.extend(DETECTOR.leaks())
    if _found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter) -> None:
    if _found:
        terminalreporter.section(
            "SECRET LEAK: stored OpenAI keys left the server", sep="!", red=True, bold=True
        )
        for leak in _found[:50]:
            terminalreporter.line(str(leak), red=True)
        if len(_found) > 50:
            terminalreporter.line(f"... and {len(_found) - 50} more", red=True)
        terminalreporter.line(f"secret leak check FAILED: {len(_found)} hits; {DETECTOR.summary()}", red=True)
    else:
        terminalreporter.line(f"secret leak check: clean ({DETECTOR.summary()})")
