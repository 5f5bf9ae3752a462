"""A fake OpenAI-compatible HTTP server that speaks real HTTP on loopback.

It is the upstream for the test suite and for the benchmarks: the product talks to it
with the real ``openai.AsyncOpenAI`` client (``base_url = server.base_url``), so the
wire format (status codes, error bodies, SSE framing, chunk shapes) mirrors OpenAI's.

Endpoints
---------
``POST /v1/chat/completions``
    ``stream: true`` -> ``text/event-stream`` with one ``data: {json}\\n\\n`` event per
    chunk: a role chunk, one chunk per content piece, a ``finish_reason: "stop"`` chunk,
    a usage chunk (``choices: []``) when ``stream_options.include_usage`` is true, then
    ``data: [DONE]``. Every event is a separate write so clients see them incrementally.
    Otherwise a ``chat.completion`` JSON object with the concatenated content and usage.
``GET /v1/models`` and ``GET /v1/models/{id}``
    A fixed list (gpt-4o, gpt-4o-mini, o3-mini, gpt-5).
``GET /_fake/stats``
    The stream counters below as JSON (no auth): for a fake running in another process.
Anything else
    404 with OpenAI's ``Invalid URL (METHOD /path)`` error body.

Built-in behaviour (always on, also used by benchmarks)
------------------------------------------------------
Auth: ``Authorization: Bearer <key>`` is required (401 otherwise). Magic keys:
``sk-bad...`` -> 401 ``invalid_api_key`` (the message quotes part of the key, like OpenAI
does, so tests can check the product never relays it); ``sk-noorg...`` -> 403
``mismatched_organization``; ``sk-quota...`` -> 429 ``insufficient_quota``;
``sk-ratelimit...`` -> 429 ``rate_limit_exceeded`` with ``Retry-After: 7``.

Magic models (chat only): ``no-such-model`` -> 404 ``model_not_found``; ``too-long`` ->
400 ``context_length_exceeded``; ``server-error`` -> 500 ``server_error``.

Content: ``chunks`` pieces ``"tok0 "``, ``"tok1 "``, ... with ``gap`` seconds between
pieces and ``first_delay`` seconds before the response starts (headers + role chunk).

Per-request overrides (request headers; handy for benchmarks, no restart needed):
``X-Fake-Chunks: <int>``, ``X-Fake-Gap-Ms: <float>``, ``X-Fake-First-Delay-Ms: <float>``.
A ``Scenario`` set through the Python API wins over these headers.

Python API (tests)
------------------
::

    server = FakeOpenAI()            # optional: chunks=5, gap=0.0, first_delay=0.0
    server.start()                   # daemon thread + own event loop, 127.0.0.1:<free port>
    server.base_url                  # "http://127.0.0.1:<port>/v1"
    server.scenario = Scenario(pieces=["a", "b"], gap=0.05, fail_after=1)
    server.requests / server.last_request        # RecordedRequest objects
    server.streams_started / streams_completed / streams_cancelled / streams_aborted
    server.open_streams
    await server.wait_for(lambda s: s.streams_cancelled >= 1, timeout=5)
    server.wait_for_sync(lambda s: s.open_streams == 0)
    server.reset()                   # clears requests, counters, scenario
    server.stop()

``FakeOpenAI`` is also a context manager (``with FakeOpenAI() as server: ...``).

CLI (benchmarks)
----------------
::

    python tests/fake_openai.py --host 127.0.0.1 --port 9100 --chunks 200 --gap-ms 20 \\
        [--first-delay-ms 0] [--fail-rate 0.05]

``--fail-rate`` drops that share of streams part-way (like ``fail_after``, at a random piece).

Runs in the foreground on uvloop when installed and prints one line
``fake-openai listening on http://HOST:PORT/v1``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

try:  # orjson is ~5x faster than json and emits compact UTF-8 directly.
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover - exercised only without orjson

    def _dumps(obj: Any) -> bytes:
        # ensure_ascii=False: OpenAI sends raw UTF-8, which split_bytes relies on.
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


__all__ = ["FakeOpenAI", "RecordedRequest", "Scenario", "MODEL_IDS", "main"]

MODEL_IDS: tuple[str, ...] = ("gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-5")
SYSTEM_FINGERPRINT = "fp_fake"

_SSE_DONE = b"data: [DONE]\n\n"
_SSE_MALFORMED = b"data: {not json\n\n"
# Placeholder used to cut a serialised chunk into a reusable prefix/suffix pair, so each
# content chunk costs one small dumps() of the piece plus two bytes concatenations.
_SENTINEL = "\x00PIECE\x00"
_SENTINEL_JSON = _dumps(_SENTINEL)
_STALL_MAX_SECONDS = 3600.0
_STALL_POLL_SECONDS = 0.05
_SPLIT_PAUSE_SECONDS = 0.005
_MODELS_CREATED = 1_715_367_049
_id_counter = itertools.count(1)


# --------------------------------------------------------------------------- data types


@dataclass
class Scenario:
    """Per-test behaviour for chat requests; every field is optional.

    Applies to chat completions until ``FakeOpenAI.reset()``; auth rules still come first.
    ``first_delay`` also delays scenario error answers. For non-streaming requests any
    ``fail_after`` / ``stall_after`` / ``malformed_after`` value means: drop the connection
    without an answer / never answer / answer 200 with a body that is not JSON.
    """

    pieces: list[str] | None = None  # content pieces (default: "tok{i} " tokens)
    gap: float | None = None  # seconds between pieces
    first_delay: float | None = None  # seconds before response headers (slow upstream)
    status: int | None = None  # answer this error status instead of content...
    error: dict[str, Any] | None = None  # ...with this inner error object (default by status)
    headers: dict[str, str] | None = None  # extra response headers (error or success)
    fail_times: int | None = None  # with status: only the first N requests fail
    fail_after: int | None = None  # abort TCP after N pieces (no finish chunk, no [DONE])
    stall_after: int | None = None  # stop sending after N pieces, keep connection open
    malformed_after: int | None = None  # emit "data: {not json" after N pieces, then go on
    end_without_done: bool = False  # end the body cleanly but omit "data: [DONE]"
    split_bytes: bool = False  # each SSE event in two writes, split inside a UTF-8 char
    gzip: bool = False  # the body gzip-compressed (Content-Encoding: gzip), streamed or not


@dataclass
class RecordedRequest:
    """One request as the fake saw it (recorded before auth/validation)."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    json: Any  # parsed body, or None when empty / not JSON
    query: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """Resolved generation parameters for one chat request."""

    pieces: tuple[str, ...]
    gap: float
    first_delay: float
    scenario: Scenario | None


class _BadOverride(ValueError):
    pass


# --------------------------------------------------------------------------- helpers


def _error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"message": message, "type": type_, "param": param, "code": code}


def _default_error_for_status(status: int) -> dict[str, Any]:
    """An OpenAI-looking error object for a bare ``Scenario(status=...)``."""
    if status == 401:
        return _error_body("Incorrect API key provided.", "invalid_request_error", "invalid_api_key")
    if status == 403:
        return _error_body("You are not allowed to access this resource.", "invalid_request_error")
    if status == 404:
        return _error_body("The requested resource was not found.", "invalid_request_error")
    if status == 429:
        return _error_body("Rate limit reached. Please try again later.", "requests", "rate_limit_exceeded")
    if status == 503:
        return _error_body("The engine is currently overloaded, please try again later.", "server_error")
    if status >= 500:
        return _error_body(
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
        )
    return _error_body(f"Request failed with status {status}.", "invalid_request_error")


def _mask_key(key: str) -> str:
    """Mask like OpenAI: first 6 chars, stars, last 4 chars."""
    return f"{key[:6]}{'*' * max(len(key) - 10, 4)}{key[-4:]}"


def _request_id() -> str:
    return f"req_{os.urandom(12).hex()}"


@functools.lru_cache(maxsize=64)
def _default_pieces(n: int) -> tuple[str, ...]:
    return tuple(f"tok{i} " for i in range(n))


@functools.lru_cache(maxsize=64)
def _encoded_default_pieces(n: int) -> tuple[bytes, ...]:
    # Benchmarks reuse the same chunk counts, so encode the default tokens once.
    return tuple(_dumps(p) for p in _default_pieces(n))


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        # Only well-formed text parts count: the fuzz tests send anything, and a 500 here would be ours.
        return "".join(p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def _prompt_tokens(messages: Any) -> int:
    """Deterministic, roughly tiktoken-sized estimate (~4 chars/token + framing)."""
    if not isinstance(messages, list):
        return 0
    total = 3
    for msg in messages:
        if isinstance(msg, dict):
            total += 3 + math.ceil(len(_text_of(msg.get("content"))) / 4)
    return total


def _usage(prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _split_point(data: bytes) -> int:
    """Index that cuts ``data`` inside a multi-byte UTF-8 character when there is one."""
    for i, byte in enumerate(data):
        if byte >= 0xC0:  # lead byte of a multi-byte sequence: cut right after it
            return i + 1
    return max(1, len(data) // 2)


def _header_number(request: web.BaseRequest, name: str, cast: Callable[[str], float]) -> float | None:
    raw = request.headers.get(name)
    if raw is None:
        return None
    try:
        value = cast(raw)
    except ValueError:
        raise _BadOverride(f"Invalid {name} header: {raw!r}") from None
    if value < 0:
        raise _BadOverride(f"Invalid {name} header: {raw!r}")
    return value


# --------------------------------------------------------------------------- server


class FakeOpenAI:
    """Fake OpenAI upstream. See the module docstring for behaviour and API."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        chunks: int = 5,
        gap: float = 0.0,
        first_delay: float = 0.0,
        fail_rate: float = 0.0,
    ) -> None:
        self.host = host
        self.port = port
        self.default_chunks = chunks
        self.default_gap = gap
        self.default_first_delay = first_delay
        self.fail_rate = fail_rate  # share of streams dropped mid-way, at random (soak runs)

        self.requests: list[RecordedRequest] = []
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0  # client went away before the stream ended
        self.streams_aborted = 0  # we cut the connection on purpose (fail_after)
        self.open_streams = 0  # a live gauge: reset() leaves it alone
        self._scenario: Scenario | None = None
        self._scenario_hits = 0  # error responses given for the current scenario

        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.ServerRunner | None = None

    # ----------------------------------------------------------------- configuration

    @property
    def scenario(self) -> Scenario | None:
        return self._scenario

    @scenario.setter
    def scenario(self, value: Scenario | None) -> None:
        # A new scenario restarts its fail_times budget. Plain attribute writes are atomic
        # under the GIL, and the handler reads the scenario once per request.
        self._scenario_hits = 0
        self._scenario = value

    def reset(self) -> None:
        """Forget recorded requests, counters and the scenario (not ``open_streams``)."""
        self.requests.clear()
        self.streams_started = 0
        self.streams_completed = 0
        self.streams_cancelled = 0
        self.streams_aborted = 0
        self.scenario = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def last_request(self) -> RecordedRequest:
        if not self.requests:
            raise IndexError("FakeOpenAI has not recorded any request")
        return self.requests[-1]

    async def wait_for(self, predicate: Callable[[FakeOpenAI], bool], timeout: float = 5.0) -> None:
        """Poll ``predicate(self)`` every 10 ms; raise ``TimeoutError`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; {self._counters()}")
            await asyncio.sleep(0.01)

    def wait_for_sync(self, predicate: Callable[[FakeOpenAI], bool], timeout: float = 5.0) -> None:
        """Blocking variant of :meth:`wait_for`."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout}s; {self._counters()}")
            time.sleep(0.01)

    def stats(self) -> dict[str, int]:
        """The counters, also served at ``GET /_fake/stats`` (for a fake in another process)."""
        return {
            "requests": len(self.requests),
            "streams_started": self.streams_started,
            "streams_completed": self.streams_completed,
            "streams_cancelled": self.streams_cancelled,
            "streams_aborted": self.streams_aborted,
            "open_streams": self.open_streams,
        }

    def _counters(self) -> str:
        return (
            f"started={self.streams_started} completed={self.streams_completed} "
            f"cancelled={self.streams_cancelled} aborted={self.streams_aborted} "
            f"open={self.open_streams} requests={len(self.requests)}"
        )

    # ----------------------------------------------------------------- lifecycle

    async def start_async(self) -> None:
        """Start serving on the running loop (used by the CLI and by :meth:`start`)."""
        server = web.Server(
            self._handle,
            # Cancel the handler when the client disconnects, so a stalled or sleeping
            # stream notices immediately instead of at its next write.
            handler_cancellation=True,
            access_log=None,  # logging costs CPU per request; benchmarks measure us
        )
        # Short shutdown timeout: stalled streams would otherwise hold stop() for 60 s.
        self._runner = web.ServerRunner(server, shutdown_timeout=0.25)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> FakeOpenAI:
        """Serve from a daemon thread with its own event loop; returns once bound."""
        if self._thread is not None:
            raise RuntimeError("FakeOpenAI already started")
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.start_async())
            except BaseException as exc:  # surface bind errors in the caller's thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        asyncio.run_coroutine_threadsafe(self.stop_async(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        self._thread = None
        self._loop = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ----------------------------------------------------------------- routing

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        parsed: Any = None
        if body:
            try:
                parsed = _loads(body)
            except ValueError:
                parsed = None
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                json=parsed,
                query=dict(request.query),
            )
        )

        path, method = request.path, request.method
        if path == "/v1/chat/completions" and method == "POST":
            return await self._chat(request, body, parsed)
        if path == "/_fake/stats" and method == "GET":
            return self._json(200, self.stats())
        if path == "/v1/models" and method == "GET":
            return self._auth_error(request) or self._json(
                200, {"object": "list", "data": [self._model(m) for m in MODEL_IDS]}
            )
        if path.startswith("/v1/models/") and method == "GET":
            if denied := self._auth_error(request):
                return denied
            model_id = path.removeprefix("/v1/models/")
            if model_id in MODEL_IDS:
                return self._json(200, self._model(model_id))
            return self._model_not_found(model_id)
        return self._error(404, _error_body(f"Invalid URL ({method} {path})", "invalid_request_error"))

    @staticmethod
    def _model(model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": _MODELS_CREATED, "owned_by": "openai"}

    # ----------------------------------------------------------------- responses

    @staticmethod
    def _json(status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
        all_headers = {
            "Content-Type": "application/json",
            "x-request-id": _request_id(),
            "openai-version": "2020-10-01",
        }
        if headers:
            all_headers.update(headers)
        return web.Response(status=status, body=_dumps(payload), headers=all_headers)

    def _error(
        self, status: int, error: dict[str, Any], headers: dict[str, str] | None = None
    ) -> web.Response:
        return self._json(status, {"error": error}, headers)

    def _model_not_found(self, model: str) -> web.Response:
        return self._error(
            404,
            _error_body(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error",
                "model_not_found",
            ),
        )

    def _auth_error(self, request: web.BaseRequest) -> web.Response | None:
        """OpenAI's auth failures, keyed on the API key prefix; None when allowed."""
        auth = request.headers.get("Authorization", "")
        scheme, _, key = auth.partition(" ")
        key = key.strip()
        if scheme.lower() != "bearer" or not key:
            return self._error(
                401,
                _error_body(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), "
                    "or as the password field (with blank username) if you're accessing the API "
                    "from your browser and are prompted for a username and password. You can "
                    "obtain an API key from https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                ),
            )
        if key.startswith("sk-bad"):
            # Quotes part of the key on purpose, exactly like OpenAI: the product must
            # never relay this message to its own users.
            return self._error(
                401,
                _error_body(
                    f"Incorrect API key provided: {_mask_key(key)}. You can find your API key "
                    "at https://platform.openai.com/account/api-keys.",
                    "invalid_request_error",
                    "invalid_api_key",
                ),
            )
        if key.startswith("sk-noorg"):
            return self._error(
                403,
                _error_body(
                    "OpenAI-Organization header should match organization for API key. "
                    "You must be a member of an organization to use the API.",
                    "invalid_request_error",
                    "mismatched_organization",
                ),
            )
        if key.startswith("sk-quota"):
            return self._error(
                429,
                _error_body(
                    "You exceeded your current quota, please check your plan and billing "
                    "details. For more information on this error, read the docs: "
                    "https://platform.openai.com/docs/guides/error-codes/api-errors.",
                    "insufficient_quota",
                    "insufficient_quota",
                ),
            )
        if key.startswith("sk-ratelimit"):
            return self._error(
                429,
                _error_body(
                    "Rate limit reached for requests in organization org-fake on requests per "
                    "min (RPM): Limit 3, Used 3, Requested 1. Please try again in 7s. Visit "
                    "https://platform.openai.com/account/rate-limits to learn more.",
                    "requests",
                    "rate_limit_exceeded",
                ),
                {
                    "Retry-After": "7",
                    "x-ratelimit-limit-requests": "3",
                    "x-ratelimit-remaining-requests": "0",
                    "x-ratelimit-reset-requests": "7s",
                },
            )
        return None

    # ----------------------------------------------------------------- chat

    def _plan(self, request: web.BaseRequest, scenario: Scenario | None) -> _Plan:
        # Precedence: Scenario (tests) > X-Fake-* headers (benchmarks) > constructor/CLI.
        chunks = _header_number(request, "X-Fake-Chunks", int)
        gap_ms = _header_number(request, "X-Fake-Gap-Ms", float)
        first_ms = _header_number(request, "X-Fake-First-Delay-Ms", float)
        pieces = _default_pieces(int(chunks) if chunks is not None else self.default_chunks)
        gap = gap_ms / 1000 if gap_ms is not None else self.default_gap
        first_delay = first_ms / 1000 if first_ms is not None else self.default_first_delay
        if scenario is not None:
            if scenario.pieces is not None:
                pieces = tuple(scenario.pieces)
            if scenario.gap is not None:
                gap = scenario.gap
            if scenario.first_delay is not None:
                first_delay = scenario.first_delay
        return _Plan(pieces, gap, first_delay, scenario)

    async def _chat(self, request: web.BaseRequest, body: bytes, parsed: Any) -> web.StreamResponse:
        if denied := self._auth_error(request):
            return denied
        if not isinstance(parsed, dict):
            return self._error(
                400,
                _error_body(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                    "payload, but what was sent was not valid JSON.",
                    "invalid_request_error",
                ),
            )
        model = parsed.get("model")
        if not isinstance(model, str) or not model:
            return self._error(
                400, _error_body("you must provide a model parameter", "invalid_request_error")
            )
        messages = parsed.get("messages")
        if not isinstance(messages, list):
            return self._error(
                400,
                _error_body(
                    "Missing required parameter: 'messages'.",
                    "invalid_request_error",
                    "missing_required_parameter",
                    "messages",
                ),
            )

        scenario = self._scenario  # read once: tests may swap it from another thread
        extra_headers = dict(scenario.headers) if scenario and scenario.headers else None
        if (
            scenario is not None
            and scenario.status is not None
            and (scenario.fail_times is None or self._scenario_hits < scenario.fail_times)
        ):
            self._scenario_hits += 1
            if scenario.first_delay:
                await asyncio.sleep(scenario.first_delay)
            error = scenario.error or _default_error_for_status(scenario.status)
            return self._error(scenario.status, error, extra_headers)

        if model == "no-such-model":
            return self._model_not_found(model)
        if model == "too-long":
            return self._error(
                400,
                _error_body(
                    "This model's maximum context length is 128000 tokens. However, your "
                    "messages resulted in 131072 tokens. Please reduce the length of the messages.",
                    "invalid_request_error",
                    "context_length_exceeded",
                    "messages",
                ),
            )
        if model == "server-error":
            return self._error(500, _default_error_for_status(500))

        try:
            plan = self._plan(request, scenario)
        except _BadOverride as exc:
            return self._error(400, _error_body(str(exc), "invalid_request_error"))

        prompt_tokens = _prompt_tokens(messages)
        if parsed.get("stream"):
            options = parsed.get("stream_options")
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return await self._stream(request, model, plan, prompt_tokens, include_usage, extra_headers)
        return await self._complete(request, model, plan, prompt_tokens, extra_headers)

    async def _complete(
        self,
        request: web.BaseRequest,
        model: str,
        plan: _Plan,
        prompt_tokens: int,
        extra_headers: dict[str, str] | None,
    ) -> web.StreamResponse:
        # Simulate the time the model would take to generate everything.
        delay = plan.first_delay + plan.gap * len(plan.pieces)
        if delay:
            await asyncio.sleep(delay)
        scenario = plan.scenario
        if scenario is not None:
            if scenario.fail_after is not None:  # connection drops before any response
                if request.transport is not None:
                    request.transport.abort()
                return web.Response()
            if scenario.stall_after is not None:
                await self._stall(request)
                return web.Response()
            if scenario.malformed_after is not None:
                return web.Response(body=b"{not json", headers={"Content-Type": "application/json"})
        payload = {
            "id": f"chatcmpl-fake{next(_id_counter):012d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "".join(plan.pieces),
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(prompt_tokens, len(plan.pieces)),
            "service_tier": "default",
        }
        response = self._json(200, payload, extra_headers)
        if scenario is not None and scenario.gzip:
            response.enable_compression(web.ContentCoding.gzip)
        return response

    async def _stall(self, request: web.BaseRequest) -> bool:
        """Hold the connection open until the client leaves (True) or an hour passes.

        handler_cancellation normally interrupts this with CancelledError; polling the
        transport as well keeps it correct even if that option is unavailable.
        """
        deadline = time.monotonic() + _STALL_MAX_SECONDS
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                return True
            await asyncio.sleep(_STALL_POLL_SECONDS)
        return False

    async def _stream(
        self,
        request: web.BaseRequest,
        model: str,
        plan: _Plan,
        prompt_tokens: int,
        include_usage: bool,
        extra_headers: dict[str, str] | None,
    ) -> web.StreamResponse:
        scenario = plan.scenario
        fail_after = scenario.fail_after if scenario else None
        if scenario is None and self.fail_rate and random.random() < self.fail_rate and len(plan.pieces) > 1:
            fail_after = random.randrange(1, len(plan.pieces))
        stall_after = scenario.stall_after if scenario else None
        malformed_after = scenario.malformed_after if scenario else None
        split = bool(scenario and scenario.split_bytes)
        end_without_done = bool(scenario and scenario.end_without_done)
        pieces, gap = plan.pieces, plan.gap

        # Everything that is identical for every chunk of this stream is serialised once.
        head: dict[str, Any] = {
            "id": f"chatcmpl-fake{next(_id_counter):012d}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        tail: dict[str, Any] = {"usage": None} if include_usage else {}

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            return b"data: " + _dumps({**head, "choices": choices, **(extra or tail)}) + b"\n\n"

        template = event(
            [{"index": 0, "delta": {"content": _SENTINEL}, "logprobs": None, "finish_reason": None}]
        )
        prefix, suffix = template.split(_SENTINEL_JSON)
        if scenario is not None and scenario.pieces is not None:
            encoded: tuple[bytes, ...] = tuple(_dumps(p) for p in pieces)
        else:
            encoded = _encoded_default_pieces(len(pieces))

        headers = {
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache, must-revalidate",
            "x-request-id": _request_id(),
            "openai-version": "2020-10-01",
        }
        if extra_headers:
            headers.update(extra_headers)
        resp = web.StreamResponse(status=200, headers=headers)
        if scenario is not None and scenario.gzip:
            resp.enable_compression(web.ContentCoding.gzip)

        async def send(data: bytes) -> None:
            # resp.write hands the bytes straight to the transport (one HTTP chunk per
            # event) and drains when buffered, so the client sees every event on its own.
            if split:
                cut = _split_point(data)
                await resp.write(data[:cut])
                await asyncio.sleep(_SPLIT_PAUSE_SECONDS)  # make the halves separate reads
                await resp.write(data[cut:])
            else:
                await resp.write(data)

        self.streams_started += 1
        self.open_streams += 1
        settled = False

        def settle(outcome: str | None) -> None:
            """Close this stream's books exactly once (outcome: counter name or None)."""
            nonlocal settled
            if settled:
                return
            settled = True
            self.open_streams -= 1
            if outcome == "completed":
                self.streams_completed += 1
            elif outcome == "cancelled":
                self.streams_cancelled += 1
            elif outcome == "aborted":
                self.streams_aborted += 1

        try:
            if plan.first_delay:
                await asyncio.sleep(plan.first_delay)
            await resp.prepare(request)
            role = {"role": "assistant", "content": ""}
            await send(event([{"index": 0, "delta": role, "logprobs": None, "finish_reason": None}]))
            count = len(encoded)
            for i in range(count + 1):  # i = pieces sent so far; count+1 lets "after all" fire
                if i == fail_after:
                    # Settled first: abort() only closes the socket on a later loop turn.
                    settle("aborted")
                    if request.transport is not None:
                        request.transport.abort()  # RST: no terminating chunk, no [DONE]
                    return resp
                if i == stall_after:
                    if await self._stall(request):
                        settle("cancelled")
                    return resp
                if i == malformed_after:
                    await send(_SSE_MALFORMED)
                if i == count:
                    break
                if gap and i:
                    await asyncio.sleep(gap)
                await send(prefix + encoded[i] + suffix)

            await send(event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]))
            if include_usage:
                await send(event([], usage=_usage(prompt_tokens, count)))
            last = b"" if end_without_done else _SSE_DONE
            if split and last:
                cut = _split_point(last)
                await resp.write(last[:cut])
                await asyncio.sleep(_SPLIT_PAUSE_SECONDS)
                last = last[cut:]
            # Count the stream as completed *before* its last bytes leave: a test that sees
            # the end of the body and checks the counters at once must not race this thread.
            settle("completed")
            try:
                # The last event and the chunked terminator go out in one write.
                await resp.write_eof(last)
            except (ConnectionError, asyncio.CancelledError):
                self.streams_completed -= 1  # the client left during the very last write
                self.streams_cancelled += 1
                raise
            return resp
        except asyncio.CancelledError:
            # handler_cancellation: the client disconnected while we slept or wrote.
            settle("cancelled")
            raise
        except ConnectionError:
            # Includes aiohttp's ClientConnectionResetError ("Cannot write to closing
            # transport"). aiohttp swallows the same error from its own write_eof.
            settle("cancelled")
            return resp
        finally:
            settle(None)  # unexpected errors still release the open_streams gauge


# --------------------------------------------------------------------------- CLI


async def _serve(server: FakeOpenAI) -> None:
    await server.start_async()
    print(f"fake-openai listening on {server.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop_async()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible server (tests/benchmarks).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--chunks", type=int, default=5, help="content pieces per answer")
    parser.add_argument("--gap-ms", type=float, default=0.0, help="delay between pieces")
    parser.add_argument("--first-delay-ms", type=float, default=0.0, help="delay before the response starts")
    parser.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        help="share of streams that drop the connection part-way, chosen at random (0.05 = 5%%)",
    )
    args = parser.parse_args(argv)
    server = FakeOpenAI(
        host=args.host,
        port=args.port,
        chunks=args.chunks,
        gap=args.gap_ms / 1000,
        first_delay=args.first_delay_ms / 1000,
        fail_rate=args.fail_rate,
    )
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:  # uvloop roughly halves the per-chunk event-loop overhead
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(server))


if __name__ == "__main__":
    sys.exit(main())
