"""Bad input never crashes a worker: generated bodies, headers and methods against every API endpoint.

Property (hypothesis, a few thousand examples in all): whatever arrives, the answer is never a 5xx,
and every 4xx is JSON in the endpoint's error shape ({"message", "code", "settings_url"} for /api/,
OpenAI's {"error": {...}} for /v1/). Requests go through Django's AsyncClient in-process on the
suite's event loop (hypothesis drives them from a worker thread); valid requests reach the fake
upstream like any other. Size and nesting limits are checked over real HTTP as well, with and
without Content-Length, since uvicorn's framing is part of the path.
"""

import asyncio
import json
import logging
from collections import Counter

import aiohttp
import pytest
from django.test import AsyncClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from profiles.models import ApiToken
from profiles.tokens import token_digest
from tests.conftest import make_user

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ_TOKEN = "fuzz0token0000000000000000000000000000ab"
FUZZ_KEY = "sk-fuzz-mallory-key-0123456789abcdef"
CHAT, V1_CHAT, V1_MODELS, PROFILE, TOKEN, TOKENS = (
    "/api/chat/openai",
    "/v1/chat/completions",
    "/v1/models",
    "/api/profile/",
    "/api/token/",
    "/api/tokens/",
)
ENDPOINTS = [CHAT, V1_CHAT, PROFILE, TOKEN, TOKENS]
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND"]
EXAMPLES = {CHAT: 1000, V1_CHAT: 800, PROFILE: 500, TOKEN: 400, TOKENS: 300, V1_MODELS: 100, "raw": 600}
TRIED: Counter[str] = Counter()
STATUSES: Counter[int] = Counter()


class FuzzSummary:
    """Reports how much was tried, at the end of the run (registered by the fixture below)."""

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if TRIED:
            per = ", ".join(f"{n} {what}" for what, n in TRIED.most_common())
            statuses = ", ".join(f"{status}: {n}" for status, n in sorted(STATUSES.items()))
            terminalreporter.line(
                f"input fuzzing: {sum(TRIED.values())} generated requests ({per}); "
                f"answers by status: {statuses}"
            )


@pytest.fixture(scope="module", autouse=True)
def _report_counts(request):
    summary = FuzzSummary()
    if not request.config.pluginmanager.is_registered(summary):
        request.config.pluginmanager.register(summary, "fuzz-summary")


@pytest.fixture
def fuzz_user(transactional_db, fake_openai, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # many logins
    settings.LOGIN_FAILURE_RATE = ""  # not throttled: many logins
    settings.MAX_STREAMS_PER_USER = 0
    user = make_user("mallory", api_key=FUZZ_KEY)
    ApiToken.objects.create(**fuzz_token_row(user.pk))
    return user


def fuzz_token_row(user_id: int) -> dict:
    """FUZZ_TOKEN as stored (its digest): a fixed token, so the strategies below can name it."""
    return {"user_id": user_id, "name": "fuzz", "prefix": FUZZ_TOKEN[:10], "digest": token_digest(FUZZ_TOKEN)}


# --- what a good error looks like ---------------------------------------------------------------


def check_answer(path: str, method: str, status: int, content_type: str, body: bytes) -> None:
    assert status < 500, f"{method} {path} -> {status}: {body[:500]!r}"
    if status < 400 or method == "HEAD":  # HEAD answers carry no body
        return
    assert content_type.startswith("application/json"), (
        f"{method} {path} -> {status} {content_type}: {body[:200]!r}"
    )
    error = json.loads(body)
    if path.startswith("/v1/"):
        assert set(error) == {"error"}, error
        error = error["error"]
        assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["code"], str) and error["code"], error
    assert error["settings_url"].endswith("/profile/settings/"), error


class Sender:
    """Sends requests on the suite's event loop from hypothesis's (synchronous) thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client = AsyncClient()

    def __call__(
        self, method: str, path: str, body: bytes, content_type: str | None, headers: dict[str, str]
    ) -> None:
        future = asyncio.run_coroutine_threadsafe(
            self._send(method, path, body, content_type, headers), self.loop
        )
        status, response_type, content = future.result(timeout=60)
        STATUSES[status] += 1
        check_answer(path, method, status, response_type, content)

    async def _send(
        self, method: str, path: str, body: bytes, content_type: str | None, headers: dict[str, str]
    ) -> tuple[int, str, bytes]:
        response = await self.client.generic(
            method, path, body, content_type=content_type or "", headers=headers
        )
        if response.streaming:
            content = b"".join([part async for part in response.streaming_content])
        else:
            content = response.content
        if path == TOKEN and method == "DELETE" and response.status_code == 204:
            row = fuzz_token_row(await self._user_id())
            await ApiToken.objects.aget_or_create(digest=row.pop("digest"), defaults=row)
        return response.status_code, response.get("Content-Type", ""), content

    @staticmethod
    async def _user_id() -> int:
        from django.contrib.auth import get_user_model

        return (await get_user_model().objects.aget(username="mallory")).pk


async def run_fuzz(test) -> None:
    """Run a hypothesis test (taking a Sender) off the loop, so the loop can serve its requests."""
    sender = Sender(asyncio.get_running_loop())
    await asyncio.to_thread(test, sender)


def fuzz_settings(examples: int):
    return hypothesis_settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- strategies ---------------------------------------------------------------------------------

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=2**63)
    | st.floats()
    | st.text(max_size=20)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
extra_fields = st.dictionaries(st.text(max_size=12), json_value, max_size=3)  # unknown fields


def some(*strategies):
    """One of the strategies, or any JSON value at all (the wrong type)."""
    return st.one_of(*strategies, json_value)


text_part = st.fixed_dictionaries({"type": st.just("text")}, optional={"text": some(st.text(max_size=30))})
image_part = st.fixed_dictionaries(
    {"type": st.just("image_url")},
    optional={
        "image_url": some(
            st.fixed_dictionaries({}, optional={"url": some(st.just("data:image/png;base64,AAAA"))})
        )
    },
)
content = some(st.text(max_size=50), st.lists(some(text_part, image_part), max_size=3))
message = some(
    st.fixed_dictionaries(
        {},
        optional={
            "role": some(st.sampled_from(["system", "user", "assistant", "tool", "USER", ""])),
            "content": content,
            "name": json_value,
        },
    )
)
messages = some(st.lists(message, max_size=4))
model = some(
    st.sampled_from(["gpt-4o", "gpt-4o-mini", "o3-mini", "gpt-5", "no-such-model"]), st.text(max_size=30)
)
temperature = some(st.floats(), st.integers(min_value=-3, max_value=3))

chat_body = some(
    st.builds(
        lambda settings, msgs, extra: {**extra, **settings, **msgs},
        st.fixed_dictionaries(
            {},
            optional={
                "chatSettings": some(
                    st.builds(
                        lambda base, extra: {**extra, **base},
                        st.fixed_dictionaries(
                            {}, optional={"model": model, "temperature": temperature, "prompt": json_value}
                        ),
                        extra_fields,
                    )
                )
            },
        ),
        st.fixed_dictionaries({}, optional={"messages": messages}),
        extra_fields,
    )
)
v1_body = some(
    st.builds(
        lambda base, extra: {**extra, **base},
        st.fixed_dictionaries(
            {},
            optional={
                "model": model,
                "messages": messages,
                "stream": some(st.booleans()),
                "temperature": temperature,
                "max_tokens": some(st.integers(min_value=-1, max_value=10_000)),
                "stream_options": json_value,
                "api_key": json_value,
                "base_url": json_value,
            },
        ),
        extra_fields,
    )
)
api_key_value = some(
    st.from_regex(r"sk-fuzz-[A-Za-z0-9]{20,40}", fullmatch=True),
    st.text(max_size=19),
    st.just(""),
    st.just("sk-with a space in it 0123456789"),
)
profile_body = some(
    st.builds(
        lambda base, extra: {**extra, **base},
        st.fixed_dictionaries(
            {},
            optional={"openai_api_key": api_key_value, "openai_organization_id": some(st.text(max_size=80))},
        ),
        extra_fields,
    )
)
token_body = some(
    st.builds(
        lambda base, extra: {**extra, **base},
        st.fixed_dictionaries(
            {},
            optional={
                "username": some(st.sampled_from(["mallory", "alice", ""])),
                "password": some(st.text(max_size=20)),
                "name": some(st.text(max_size=120)),
                "expires_in_days": some(st.integers(min_value=-10, max_value=10**20)),
            },
        ),
        extra_fields,
    )
)
tokens_body = some(
    st.builds(
        lambda base, extra: {**extra, **base},
        st.fixed_dictionaries(
            {},
            optional={
                "name": some(st.text(max_size=120)),
                "expires_in_days": some(st.integers(min_value=-10, max_value=10**20) | st.floats()),
            },
        ),
        extra_fields,
    )
)


@st.composite
def encoded(draw, body_strategy) -> bytes:
    """A body as bytes: valid JSON, or JSON with bytes inserted (broken syntax, invalid UTF-8)."""
    raw = json.dumps(draw(body_strategy), allow_nan=True).encode()
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


content_types = st.just("application/json") | st.sampled_from(
    [
        None,
        "application/json; charset=latin-1",
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "multipart/form-data; boundary=xyz",
        "application/octet-stream",
        "application/json; charset=no-such-charset",
        "*/*",
        "garbage",
    ]
)
# Mostly a valid token, so most examples get past authentication to the body.
authorization = st.one_of(
    st.sampled_from([f"Token {FUZZ_TOKEN}", f"Bearer {FUZZ_TOKEN}"]),
    st.sampled_from([f"Token {FUZZ_TOKEN}", f"Bearer {FUZZ_TOKEN}"]),
    st.sampled_from(
        [
            f"bearer {FUZZ_TOKEN}",
            None,
            "",
            "Token",
            "Bearer ",
            "Token not-a-token",
            f"Token {FUZZ_TOKEN} extra",
            "Basic bWFsbG9yeTpwdw==",
            "Bearer \u00e9\u00e8",
        ]
    ),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=60),
)
other_headers = st.fixed_dictionaries(
    {},
    optional={
        "X-CSRFToken": st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=64),
        "Cookie": st.sampled_from(["sessionid=garbage", "csrftoken=x; sessionid=", "sessionid=" + "a" * 300]),
        "Accept": st.sampled_from(["*/*", "text/html", "application/json", "nothing/at-all"]),
        "OpenAI-Organization": st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30
        ),
    },
)


@st.composite
def headers_for(draw) -> dict[str, str]:
    headers = dict(draw(other_headers))
    auth = draw(authorization)
    if auth is not None:
        headers["Authorization"] = auth
    return headers


def request_to(path: str, body_strategy, methods: list[str]):
    # Mostly the endpoint's own methods, so most examples get past method dispatch to the body.
    return st.tuples(
        st.sampled_from(methods * (12 // len(methods)) + METHODS),
        encoded(body_strategy),
        content_types,
        headers_for(),
    )


# --- the properties -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "body", "methods"),
    [
        (CHAT, chat_body, ["POST"]),
        (V1_CHAT, v1_body, ["POST"]),
        (PROFILE, profile_body, ["GET", "PATCH"]),
        (TOKEN, token_body, ["POST", "DELETE"]),
        (TOKENS, tokens_body, ["GET", "POST"]),
        (V1_MODELS, st.just({}), ["GET"]),
    ],
)
async def test_generated_requests_get_a_json_4xx_never_a_5xx(fuzz_user, path, body, methods):
    @fuzz_settings(EXAMPLES[path])
    @given(request=request_to(path, body, methods))
    def property_holds(sender: Sender, request) -> None:
        method, raw, content_type, headers = request
        TRIED[path] += 1
        sender(method, path, raw, content_type, headers)

    await run_fuzz(property_holds)


@pytest.mark.slow
async def test_arbitrary_bytes_to_every_endpoint(fuzz_user):
    @fuzz_settings(EXAMPLES["raw"])
    @given(
        path=st.sampled_from(ENDPOINTS),
        method=st.sampled_from(["POST", "PATCH"]),
        raw=st.binary(max_size=300) | st.text(max_size=100).map(lambda t: t.encode("utf-16")),
        content_type=content_types,
        headers=headers_for(),
    )
    def property_holds(sender: Sender, path, method, raw, content_type, headers) -> None:
        TRIED["raw bytes"] += 1
        sender(method, path, raw, content_type, headers)

    await run_fuzz(property_holds)


# --- limits: nesting and size -------------------------------------------------------------------

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
METHOD_OF = {CHAT: "POST", V1_CHAT: "POST", PROFILE: "PATCH", TOKEN: "POST", TOKENS: "POST"}


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("body", [DEEP_ARRAY, DEEP_OBJECT], ids=["array", "object"])
async def test_deeply_nested_json_is_a_400_not_a_recursion_error(fuzz_user, path, body):
    response = await AsyncClient().generic(
        METHOD_OF[path],
        path,
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {FUZZ_TOKEN}"},
    )
    assert response.status_code == 400
    check_answer(path, METHOD_OF[path], 400, response["Content-Type"], response.content)
    assert b"invalid_json" in response.content


async def test_many_messages_are_refused(fuzz_user):
    body = json.dumps(
        {"chatSettings": {"model": "gpt-4o"}, "messages": [{"role": "user", "content": "x"}] * 1001}
    )
    response = await AsyncClient().post(
        CHAT, body, content_type="application/json", headers={"Authorization": f"Bearer {FUZZ_TOKEN}"}
    )
    assert response.status_code == 400
    assert json.loads(response.content)["fields"]["messages"] == "At most 1000 messages."


async def _chunks(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _oversize_body(path: str, size: int) -> bytes:
    filler = "x" * size
    if path == CHAT:
        return json.dumps(
            {"chatSettings": {"model": "gpt-4o"}, "messages": [{"role": "user", "content": filler}]}
        ).encode()
    if path == V1_CHAT:
        return json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": filler}]}).encode()
    if path == PROFILE:
        return json.dumps({"openai_organization_id": filler}).encode()
    return json.dumps({"username": filler, "password": "x"}).encode()


@pytest.mark.parametrize("path", ENDPOINTS)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_bodies_past_the_limit_get_413_over_http(live_app, fuzz_user, path, framing):
    """The documented default (MAX_REQUEST_BYTES, 8 MiB) for every endpoint, declared or chunked."""
    body = _oversize_body(path, 8 * 1024 * 1024 + 1)
    data = body if framing == "content-length" else _chunks(body)
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            METHOD_OF[path],
            live_app + path,
            data=data,
            headers={"Authorization": f"Bearer {FUZZ_TOKEN}", "Content-Type": "application/json"},
        ) as resp,
    ):
        content = await resp.read()
        assert resp.status == 413, content[:300]
        check_answer(path, METHOD_OF[path], 413, resp.headers["Content-Type"], content)
        assert b"request_too_large" in content


@pytest.mark.parametrize("path", [PROFILE, TOKEN])
async def test_chunked_bodies_within_the_limit_are_read(live_app, fuzz_user, path):
    # DRF skips parsing a body without Content-Length; the ASGI body limit gives it one.
    body = {PROFILE: {"openai_organization_id": "org-chunked"}, TOKEN: {"username": "mallory"}}[path]
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            METHOD_OF[path],
            live_app + path,
            data=_chunks(json.dumps(body).encode()),
            headers={"Authorization": f"Bearer {FUZZ_TOKEN}", "Content-Type": "application/json"},
        ) as resp,
    ):
        answer = await resp.json()
    if path == PROFILE:
        assert answer["openai_organization_id"] == "org-chunked"
    else:
        assert answer["fields"] == {"password": "This field is required."}  # the username was read


async def test_an_endless_body_is_not_read_to_its_end(live_app, fuzz_user, settings, caplog):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    sent = 0

    async def endless():
        nonlocal sent
        while sent < 2 * 1024**3:  # 2 GiB, if nobody stopped us
            sent += 64 * 1024
            yield b" " * (64 * 1024)

    statuses: list[int] = []
    with caplog.at_level(logging.INFO, logger="django.request"):
        async with aiohttp.ClientSession() as session:
            try:
                async with session.post(
                    live_app + CHAT, data=endless(), headers={"Authorization": f"Bearer {FUZZ_TOKEN}"}
                ) as resp:
                    statuses.append(resp.status)
                    await resp.read()
            except (aiohttp.ClientOSError, aiohttp.ClientPayloadError):
                # The server answered and closed the connection while the client was still writing;
                # the client may then see its write fail or the connection reset before it reads
                # the answer. Which one wins is a race.
                pass
    answered = [getattr(r, "status_code", None) for r in caplog.records if r.name == "django.request"]
    assert statuses == [413] or 413 in answered
    assert sent < 256 * 1024 * 1024  # answered long before the client was done


async def test_an_oversized_body_of_known_length_always_gets_its_413(live_app, fuzz_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 64 * 1024
    body = b" " * (8 * 1024 * 1024)  # declared by Content-Length, bounded: read to its end, then answered
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(
                live_app + CHAT, data=body, headers={"Authorization": f"Bearer {FUZZ_TOKEN}"}
            ) as resp:
                assert resp.status == 413
                assert (await resp.json())["code"] == "request_too_large"
