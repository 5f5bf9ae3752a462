"""The ASGI handler's shortcuts (core/django_internals.py) and the precompiled token query
(profiles/token_query.py): cheaper, and otherwise Django's behaviour."""

import asyncio
import gc
import json
import threading
from datetime import timedelta

import aiohttp
import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import AsyncClient
from django.utils import timezone
from openai._response import AsyncAPIResponse

from core import django_internals as on_loop
from core.django_internals import ON_LOOP_TWINS, ChatASGIHandler, routes_to_async_view
from profiles.models import ApiToken, Profile
from profiles.token_query import token_lookup
from profiles.tokens import token_create, token_digest
from tests.conftest import ALICE_KEY, ALICE_ORG, PASSWORD
from tests.fake_openai import Scenario
from tests.helpers import CHAT_URL, chat_body, json_of, post_chat

pytestmark = pytest.mark.django_db(transaction=True)


# ------------------------------------------------------------------ middleware twins


def test_every_listed_middleware_runs_as_its_on_loop_twin(settings):
    assert all(path in ON_LOOP_TWINS for path in settings.MIDDLEWARE)  # a new one would silently hop
    handler = ChatASGIHandler()
    classes = []
    layer = handler._middleware_chain
    while layer is not None:  # convert_exception_to_response closures wrap each middleware instance
        instance = next(
            (c.cell_contents for c in (layer.__closure__ or ()) if hasattr(c.cell_contents, "get_response")),
            None,
        )
        if instance is None:
            break
        classes.append(type(instance))
        layer = instance.get_response
    assert classes == [getattr(on_loop, path.rsplit(".", 1)[1]) for path in settings.MIDDLEWARE]
    for twin in classes:
        assert issubclass(twin, on_loop.OnLoopMixin) and twin.__mro__[2].__module__.startswith("django.")
    # CSRF's process_view is called by the handler itself: async, so no thread hop either.
    assert [iscoroutinefunction(hook) for hook in handler._view_middleware] == [True]


def test_only_async_views_skip_the_per_request_thread():
    assert routes_to_async_view({"path": "/api/chat/openai"})
    assert routes_to_async_view({"path": "/v1/chat/completions"})
    assert not routes_to_async_view({"path": "/api/profile/"})  # DRF: sync
    assert not routes_to_async_view({"path": "/profile/settings/"})
    assert not routes_to_async_view({"path": "/no/such/page"})
    assert routes_to_async_view({"path": "/prefix/api/chat/openai", "root_path": "/prefix"})


@pytest.mark.parametrize("csrf_in_session", [False, True], ids=["csrf-cookie", "csrf-in-session"])
async def test_pages_through_the_handler_keep_djangos_security_behaviour(
    live_app, alice, settings, csrf_in_session
):
    settings.CSRF_USE_SESSIONS = csrf_in_session  # then the CSRF twin's hooks go back to a thread
    login = live_app + "/accounts/login/"
    credentials = {"username": "alice", "password": PASSWORD}
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:  # unsafe: an IP host
        # CSRF: a form post without the cookie and token is refused...
        async with session.post(login, data=credentials, allow_redirects=False) as resp:
            assert resp.status == 403
        async with session.get(login) as resp:
            assert resp.status == 200
            assert resp.headers["X-Frame-Options"] == "DENY"  # clickjacking
            assert resp.headers["X-Content-Type-Options"] == "nosniff"  # security
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]  # CSP
            html = await resp.text()
            assert ("csrftoken" in resp.cookies) is not csrf_in_session
        # ...and with them, the login works and starts a session.
        token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
        async with session.post(
            login, data={**credentials, "csrfmiddlewaretoken": token}, allow_redirects=False
        ) as resp:
            assert resp.status == 302 and "sessionid" in resp.cookies


async def test_open_streams_hold_no_thread_each(live_app, fake_openai, alice, settings):
    """Django would start a thread per request and keep it until the response ends."""
    settings.MAX_STREAMS_PER_USER = 20
    fake_openai.scenario = Scenario(pieces=["a"] * 40, gap=0.05)
    token = (await sync_to_async(token_create)(user=alice, name="tests"))[1]
    streams = 8
    before = threading.active_count()
    async with aiohttp.ClientSession() as session:
        responses = [
            await session.post(
                live_app + CHAT_URL, data=json.dumps(chat_body()), headers={"Authorization": f"Token {token}"}
            )
            for _ in range(streams)
        ]
        try:
            assert [r.status for r in responses] == [200] * streams
            await asyncio.gather(*(r.content.readany() for r in responses))  # all streaming now
            during = threading.active_count()
        finally:
            for r in responses:
                r.close()
    assert during - before < streams // 2, (before, during)


async def test_open_streams_keep_no_sdk_wrappers(live_app, fake_openai, alice, settings):
    """While streaming, only the aiohttp response is held (sdk_internals.network_body), not the SDK's
    wrappers."""
    settings.MAX_STREAMS_PER_USER = 20
    fake_openai.scenario = Scenario(pieces=["a"] * 40, gap=0.05)
    token = (await sync_to_async(token_create)(user=alice, name="tests"))[1]
    async with aiohttp.ClientSession() as session:
        api = await session.post(
            live_app + CHAT_URL, data=json.dumps(chat_body()), headers={"Authorization": f"Token {token}"}
        )
        v1 = await session.post(
            live_app + "/v1/chat/completions",
            headers={"Authorization": f"Bearer {token}"},
            json={"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        )
        try:
            assert (api.status, v1.status) == (200, 200)
            await asyncio.gather(api.content.readany(), v1.content.readany())
            gc.collect()
            # type(), not isinstance(): that asks lazy objects (a request.user) for __class__, loading them.
            held = [o for o in gc.get_objects() if issubclass(type(o), AsyncAPIResponse)]
        finally:
            api.close()
            v1.close()
    assert held == []


# ------------------------------------------------------------------ the token query


def test_token_query_builds_what_the_orm_would(alice, alice_token):
    stored = ApiToken.objects.get(user=alice)
    stored.last_used_at = timezone.now() - timedelta(minutes=5)
    stored.expires_at = timezone.now() + timedelta(days=3)
    stored.save()
    match = token_lookup(token_digest(alice_token))
    assert (match.token_id, match.last_used_at, match.expires_at) == (
        stored.pk,
        stored.last_used_at,
        stored.expires_at,
    )  # aware datetimes: the backend's converters ran
    user, profile = match.user, match.profile
    expected = Profile.objects.get(user=alice)
    assert user.pk == alice.pk and user.is_active
    assert user.get_deferred_fields() >= {"password", "username"}  # only id and is_active are loaded
    assert user.username == "alice"  # a deferred field still loads on access
    assert profile.pk == expected.pk
    for field in Profile._meta.concrete_fields:
        assert getattr(profile, field.attname) == getattr(expected, field.attname), field.name
    assert profile.openai_api_key == ALICE_KEY and profile.openai_organization_id == ALICE_ORG  # decrypted
    assert profile.openai_api_key_updated_at.tzinfo is not None  # the backend's converters ran
    assert profile.user is user  # cached: no query
    assert not profile._state.adding and profile._state.db == "default"


def test_token_query_without_profile_or_token(bob, bob_token):
    Profile.objects.filter(user=bob).delete()
    match = token_lookup(token_digest(bob_token))
    assert match.user.pk == bob.pk and match.profile is None
    assert (match.last_used_at, match.expires_at) == (None, None)
    assert token_lookup(token_digest("no-such-token")) is None
    assert token_lookup(token_digest(bob_token)[:-1]) is None


def test_token_query_is_one_query_by_the_digest_index(alice, alice_token, django_assert_num_queries):
    token_lookup(token_digest(alice_token))  # compiled once, on first use
    with django_assert_num_queries(1) as captured:
        assert token_lookup(token_digest(alice_token)) is not None
    sql = captured.captured_queries[0]["sql"]
    assert '"profiles_apitoken"."digest" =' in sql and "LEFT OUTER JOIN" in sql
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, "profiles_apitoken").values()
    assert any(c["columns"] == ["digest"] and (c["unique"] or c["index"]) for c in constraints)


async def test_inactive_user_token_is_refused(fake_openai, alice, alice_token):
    await get_user_model().objects.filter(pk=alice.pk).aupdate(is_active=False)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 401 and json_of(content)["code"] == "invalid_token"
    assert fake_openai.requests == []
