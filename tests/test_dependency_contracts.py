"""What our code assumes of its dependencies' internals, asserted directly.

Each assumption is relied on in one module (upstream/sdk_internals.py for the OpenAI SDK and its
transport, core/django_internals.py for Django, core/drf.py for DRF) for a measured gain. Versions
are locked, so these fail on a deliberate upgrade (`make lock`), loudly, instead of the relay
quietly taking its slow path or a request quietly paying thread hops again.
"""

import ast
import inspect
import json
import socket
import textwrap
from contextlib import AsyncExitStack

import aiohttp
import openai
import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.contrib.messages.storage.base import BaseStorage
from django.contrib.messages.storage.fallback import FallbackStorage
from django.core.handlers.asgi import ASGIHandler
from django.db import connection
from django.test import AsyncClient, RequestFactory
from django.utils import timezone
from django.utils.deprecation import MiddlewareMixin
from django.utils.module_loading import import_string
from openai._vendor.httpx_aiohttp.transport import AiohttpResponseStream, AiohttpTransport
from rest_framework.request import Request

from core.django_internals import ON_LOOP_TWINS, columns_of, compiled_sql, converted_row
from profiles.models import ApiToken, Profile
from profiles.tokens import token_digest
from tests.fake_openai import Scenario
from tests.helpers import chat_body, post_chat
from upstream import host_guard, sdk_internals
from upstream.client import pooled_client, request_options, with_retries
from upstream.credentials import OpenAICredentials
from upstream.errors import map_upstream_error
from upstream.host_guard import GuardedResolver, HostRefused

pytestmark = pytest.mark.django_db(transaction=True)

CREDENTIALS = OpenAICredentials(api_key="sk-contract-0123456789abcdefghij", organization=None)


async def _open(stack: AsyncExitStack, stream: bool = True) -> openai.AsyncAPIResponse:
    completions = pooled_client().chat.completions.with_streaming_response
    return await with_retries(
        lambda: stack.enter_async_context(
            completions.create(
                model=openai.omit,
                messages=openai.omit,
                **request_options(CREDENTIALS),
                extra_body={
                    "model": "gpt-4o-mini",
                    "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            )
        ),
        CREDENTIALS,
    )


# --- the OpenAI SDK and its aiohttp transport (upstream/sdk_internals.py) -------------------------


async def test_the_sdk_response_still_sits_on_an_aiohttp_response_we_can_read(fake_openai):
    """1. The attribute chain to the aiohttp response exists (else network_body() says None: slow path)."""
    fake_openai.scenario = Scenario(pieces=["a", "b"])
    async with AsyncExitStack() as stack:
        response = await _open(stack)
        assert isinstance(response, openai.AsyncAPIResponse)
        bound = response.http_response.stream
        assert isinstance(bound._stream._aiohttp_response, aiohttp.ClientResponse)
        body = sdk_internals.network_body(response)
        assert body is not None
        received = b"".join([chunk async for chunk in body.chunks])
        await body.aclose()
    assert b'"content":"a"' in received and received.rstrip().endswith(b"data: [DONE]")


async def test_the_sdk_closes_a_body_exactly_as_network_body_does(fake_openai):
    """What lets us drop the SDK's response unclosed: its transport's stream closes only the aiohttp
    response, and aiohttp's __aexit__ is release() then wait_for_close()."""
    calls: list[str] = []

    class Recorder:
        async def __aexit__(self, *exc: object) -> None:
            calls.append("aexit")

    await AiohttpResponseStream(Recorder()).aclose()  # type: ignore[arg-type]
    assert calls == ["aexit"]
    exit_body = [
        ast.dump(node)
        for node in ast.parse(textwrap.dedent(inspect.getsource(aiohttp.ClientResponse.__aexit__)))
        .body[0]
        .body
    ]  # type: ignore[attr-defined]
    assert any("release" in node for node in exit_body) and any(
        "wait_for_close" in node for node in exit_body
    )


async def test_network_body_closes_an_unfinished_stream_upstream_and_keeps_a_finished_connection(fake_openai):
    fake_openai.scenario = Scenario(pieces=["x"] * 50, gap=0.05)
    async with AsyncExitStack() as stack:
        body = sdk_internals.network_body(await _open(stack))
        assert body is not None
        await anext(body.chunks)
        await body.aclose()  # mid-stream: the connection is closed, the upstream sees it go
        stack.pop_all()
    await fake_openai.wait_for(lambda s: s.streams_cancelled == 1)

    fake_openai.scenario = None
    async with AsyncExitStack() as stack:
        body = sdk_internals.network_body(await _open(stack))
        assert body is not None
        async for _ in body.chunks:
            pass
        await body.aclose()
        stack.pop_all()
    session = pooled_client()._client._transport.client
    assert sum(len(idle) for idle in session.connector._conns.values()) >= 1  # back in the pool


async def test_a_compressed_body_takes_the_sdks_path_and_is_decoded(fake_openai):
    fake_openai.scenario = Scenario(pieces=["é", "a"], gzip=True)
    async with AsyncExitStack() as stack:
        response = await _open(stack)
        assert response.http_response.headers["content-encoding"] == "gzip"
        assert sdk_internals.network_body(response) is None  # aiohttp's bytes would still be gzip
        received = b"".join([chunk async for chunk in response.http_response.aiter_bytes()])
    assert '"content":"é"'.encode() in received


async def test_a_compressed_stream_is_relayed_whole(fake_openai, alice_token):
    """The compressed-body path end to end, on both endpoints."""
    fake_openai.scenario = Scenario(pieces=["Grüße ", "aus ", "Köln"], gzip=True)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200 and content.decode() == "Grüße aus Köln"
    response = await AsyncClient().post(
        "/v1/chat/completions",
        data=json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_token}"},
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers  # decoded: we send plain JSON
    assert json.loads(response.content)["choices"][0]["message"]["content"] == "Grüße aus Köln"


async def test_a_refused_connection_is_told_from_a_timeout(fake_openai, settings):
    """2. The SDK's transport maps a refused connection to a connect *timeout*; the aiohttp error on
    the cause chain is how is_timeout tells them apart (502 openai_unreachable, not 504)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once it is closed
    settings.OPENAI_BASE_URL = f"http://127.0.0.1:{port}/v1"
    settings.OPENAI_MAX_RETRIES = 0
    client = pooled_client()
    with pytest.raises(openai.APIConnectionError) as refused:
        await client.models.list(**request_options(CREDENTIALS))
    assert isinstance(refused.value, openai.APITimeoutError)  # what the SDK says...
    assert not sdk_internals.is_timeout(refused.value)  # ...and what we make of it
    assert map_upstream_error(refused.value).code == "openai_unreachable"
    await client.close()

    settings.OPENAI_BASE_URL = fake_openai.base_url
    settings.OPENAI_TIMEOUT = 0.3
    fake_openai.scenario = Scenario(first_delay=2)
    with pytest.raises(openai.APITimeoutError) as slow:
        await pooled_client().chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], **request_options(CREDENTIALS)
        )
    assert sdk_internals.is_timeout(slow.value)
    assert map_upstream_error(slow.value).code == "openai_timeout"


async def test_the_transport_never_follows_a_redirect_itself():
    """aiohttp's redirects stay off in the SDK's transport (httpx2's are ours to turn off: 3. below):
    a user's server could otherwise send the request, key and all, somewhere the guard never saw."""
    calls = [
        node
        for node in ast.walk(
            ast.parse(textwrap.dedent(inspect.getsource(AiohttpTransport.handle_async_request)))
        )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "request"
    ]
    assert len(calls) == 1
    keywords = {keyword.arg: keyword.value for keyword in calls[0].keywords}
    assert (
        isinstance(keywords["allow_redirects"], ast.Constant) and keywords["allow_redirects"].value is False
    )


async def test_a_guarded_client_uses_our_session_resolver_and_no_redirects(
    fake_openai, settings, monkeypatch
):
    """3. httpx2 takes the transport it is given; the vendored transport takes a session factory and
    calls it on its first request; the connector resolves through GuardedResolver."""
    settings.UPSTREAM_ALLOWED_HOSTS = ["fake-upstream.lan"]
    monkeypatch.setattr(host_guard, "resolve", lambda host, port: ["127.0.0.1"])
    http_client = sdk_internals.guarded_http_client(timeout=openai.Timeout(5.0), max_connections=10)
    assert http_client.follow_redirects is False and http_client._trust_env is False
    transport = http_client._transport
    assert isinstance(transport, AiohttpTransport) and callable(transport.client)
    port = fake_openai.base_url.rsplit(":", 1)[1].split("/")[0]
    client = openai.AsyncOpenAI(
        api_key="per-request", base_url=f"http://fake-upstream.lan:{port}/v1", http_client=http_client
    )
    try:
        await client.models.list(**request_options(CREDENTIALS))
        session = transport.client
        assert isinstance(session, aiohttp.ClientSession)
        assert isinstance(session.connector._resolver, GuardedResolver)  # type: ignore[union-attr]
    finally:
        await client.close()


async def test_a_refusal_at_connection_time_is_on_the_sdk_errors_cause_chain(
    fake_openai, settings, monkeypatch
):
    """4. The resolver's HostRefused reaches us through aiohttp and the SDK as the cause of its error."""
    settings.UPSTREAM_ALLOWED_HOSTS = []
    monkeypatch.setattr(host_guard, "resolve", lambda host, port: ["127.0.0.1"])
    client = openai.AsyncOpenAI(
        api_key="per-request",
        base_url="https://rebound.example.com/v1",
        max_retries=0,
        http_client=sdk_internals.guarded_http_client(timeout=openai.Timeout(5.0), max_connections=10),
    )
    try:
        with pytest.raises(openai.APIConnectionError) as failed:
            await client.models.list(**request_options(CREDENTIALS))
    finally:
        await client.close()
    refusal = sdk_internals.host_refusal(failed.value)
    assert isinstance(refusal, HostRefused) and "a loopback address" in refusal.message


# --- Django (core/django_internals.py) ----------------------------------------------------------

# ASGIHandler.__call__ as of Django 6.1, less its docstring and comments: serve HTTP only, and run
# handle() inside a ThreadSensitiveContext. ChatASGIHandler skips just that context for async views.
EXPECTED_ASGI_CALL = """
if scope['type'] != 'http':
    raise ValueError('Django can only handle ASGI/HTTP connections, not %s.' % scope['type'])
async with ThreadSensitiveContext():
    await self.handle(scope, receive, send)
"""


def _body_of(function: object) -> str:
    tree = ast.parse(textwrap.dedent(inspect.getsource(function)))  # type: ignore[arg-type]
    body = tree.body[0].body  # type: ignore[attr-defined]
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return "\n".join(ast.unparse(node) for node in body)


def test_asgi_handler_call_still_only_adds_the_thread_sensitive_context():
    assert _body_of(ASGIHandler.__call__) == EXPECTED_ASGI_CALL.strip()


def test_none_of_the_eight_middleware_has_an_async_entry_point_of_its_own():
    """The twins replace MiddlewareMixin.__acall__; a class that gained its own would be bypassed."""
    assert len(ON_LOOP_TWINS) == 8
    for path, twin in ON_LOOP_TWINS.items():
        django_class = import_string(path)
        assert twin.__mro__[2] is django_class, path  # (OnLoopMixin, Django's class): hooks unchanged
        own = [cls for cls in django_class.__mro__ if cls is not MiddlewareMixin and "__acall__" in vars(cls)]
        assert own == [], path
        assert "__call__" not in vars(django_class), path  # MiddlewareMixin.__call__ dispatches to __acall__
    assert "async_capable" in vars(MiddlewareMixin) and inspect.iscoroutinefunction(MiddlewareMixin.__acall__)


def test_get_messages_is_the_request_s_message_storage():
    request = RequestFactory().get("/")
    request.session = {}  # type: ignore[attr-defined]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]  # as MessageMiddleware sets it
    storage = get_messages(request)
    assert isinstance(storage, BaseStorage) and storage.used is False and storage.added_new is False


def test_the_compiled_token_query_returns_what_the_orm_would(alice, alice_token):
    ApiToken.objects.update(last_used_at=timezone.now())  # a datetime column to convert as well
    user_model = get_user_model()
    fields = [
        ApiToken._meta.get_field("last_used_at"),
        user_model._meta.get_field("id"),
        *Profile._meta.concrete_fields,
    ]
    digest = token_digest(alice_token)
    queryset = ApiToken.objects.filter(digest=digest).values_list(
        "last_used_at",
        "user__id",
        *(f"user__profile__{field.attname}" for field in Profile._meta.concrete_fields),
    )
    sql, params = compiled_sql(queryset, "default")
    assert params == [digest]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    columns = columns_of(fields)
    assert converted_row(row, columns, connection) == list(
        queryset.get()
    )  # same values, decrypted key and aware datetimes included


# --- Django REST framework (core/drf.py) ------------------------------------------------------------


def test_a_drf_request_still_carries_django_s_request():
    django_request = RequestFactory().post("/api/profile/", data=b"{}", content_type="application/json")
    assert Request(django_request)._request is django_request  # the parsers read its body (413 limit)
