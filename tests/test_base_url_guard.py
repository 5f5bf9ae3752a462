"""Base URLs users (and staff, for the team key) choose: the SSRF guard, on save and at connection time.

Names are resolved through upstream.host_guard.resolve, which the `dns` fixture replaces with a
table (our own seam; the SDK is not touched), so a name can resolve one way when it is saved and
another when it is connected to, as in a DNS rebinding attack.
"""

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from aiohttp import web
from asgiref.sync import sync_to_async
from django.test import AsyncClient

from profiles.models import Profile, TeamKey
from tests.conftest import ALICE_KEY, make_user
from tests.helpers import chat_body, json_of, post_chat
from upstream import client as upstream_client
from upstream import host_guard
from upstream.credentials import OpenAICredentials
from upstream.host_guard import HostRefused, check_base_url
from upstream.stream import open_stream

PUBLIC = "93.184.216.34"  # a public address (example.com's, once)
INTERNAL = {
    "127.0.0.1": "a loopback address",
    "10.0.0.1": "a private address",
    "169.254.169.254": "a cloud metadata address",
    "::1": "a loopback address",
}


class FakeDNS:
    """host -> addresses; a list of answers is given out one per lookup (the last one repeats)."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def set(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.answers.get(host)
        if not answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def dns(monkeypatch) -> FakeDNS:
    fake = FakeDNS()
    monkeypatch.setattr(host_guard, "resolve", fake.resolve)
    return fake


@pytest.fixture(autouse=True)
def _user_base_urls(settings) -> None:
    settings.USER_BASE_URL_ENABLED = True
    settings.UPSTREAM_ALLOWED_HOSTS = []


class Listener:
    """A bare TCP port that counts the connections made to it (it answers nothing)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener()
    yield port
    port.close()


async def set_base_url(user, base_url: str) -> None:
    """Store a base URL as it is, past the guard (as if saved under settings that have changed)."""
    await Profile.objects.filter(user=user).aupdate(openai_base_url=base_url)


def fake_port(fake_openai) -> int:
    return int(fake_openai.base_url.rsplit(":", 1)[1].split("/")[0])


# --- on save: check_base_url ------------------------------------------------------------------------


@pytest.mark.parametrize("address", list(INTERNAL))
def test_a_name_resolving_to_an_internal_address_is_refused(dns, address):
    dns.set("llm.example.com", [address])
    with pytest.raises(HostRefused) as refused:
        check_base_url("https://llm.example.com/v1")
    assert f"it resolves to {INTERNAL[address]}" in refused.value.message
    assert "llm.example.com" in refused.value.message


@pytest.mark.parametrize("address", list(INTERNAL))
def test_a_name_resolving_to_an_internal_address_is_accepted_once_allowlisted(dns, settings, address):
    settings.UPSTREAM_ALLOWED_HOSTS = ["LLM.example.com"]  # host names compare case-insensitively
    dns.set("llm.example.com", [address])
    assert check_base_url("https://llm.example.com/v1/") == "https://llm.example.com/v1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/v1", "a loopback address"),
        ("https://10.0.0.1:8443/v1", "a private address"),
        ("https://169.254.169.254/latest", "a cloud metadata address"),
        ("https://[::1]:8000/v1", "a loopback address"),
        ("https://[::ffff:127.0.0.1]/v1", "a loopback address"),  # IPv4 inside IPv6
        ("https://100.100.100.200/v1", "a cloud metadata address"),  # Alibaba's, in 100.64/10
        ("https://[fd00:ec2::254]/v1", "a cloud metadata address"),
        ("https://0.0.0.0/v1", "an unspecified address"),
        ("https://224.0.0.1/v1", "a multicast address"),
    ],
)
def test_an_internal_ip_literal_is_refused_without_a_lookup(dns, url, reason):
    with pytest.raises(HostRefused) as refused:
        check_base_url(url)
    assert f"it is {reason}" in refused.value.message
    assert dns.lookups == []


@pytest.mark.parametrize(
    ("url", "host"), [("http://127.0.0.1:11434/v1", "127.0.0.1"), ("https://[::1]/v1", "[::1]")]
)
def test_an_ip_literal_is_accepted_once_allowlisted(settings, url, host):
    settings.UPSTREAM_ALLOWED_HOSTS = [host]
    assert check_base_url(url) == url


def test_plain_http_is_refused_unless_allowlisted(dns, settings):
    dns.set("llm.example.com", [PUBLIC])
    with pytest.raises(HostRefused, match="only https is allowed"):
        check_base_url("http://llm.example.com/v1")
    settings.UPSTREAM_ALLOWED_HOSTS = ["llm.example.com"]
    assert check_base_url("http://llm.example.com/v1") == "http://llm.example.com/v1"


def test_a_name_with_one_internal_address_among_public_ones_is_refused(dns):
    dns.set("mixed.example.com", [PUBLIC, "2606:4700::1111", "192.168.1.20"])
    with pytest.raises(HostRefused, match="a private address"):
        check_base_url("https://mixed.example.com/v1")


def test_a_public_name_is_accepted(dns):
    dns.set("openrouter.example", [PUBLIC, "2606:4700::1111"])
    assert check_base_url(" https://openrouter.example/api/v1/ ") == "https://openrouter.example/api/v1"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://llm.example.com/v1", "must start with https://"),
        ("https:///v1", "must start with https://"),
        ("https://user:secret@llm.example.com/v1", "user name or password"),
        ("https://llm.example.com/v1?api_key=x", "no query"),
        ("https://llm.example.com:99999/v1", "not a valid URL"),
        ("https://nowhere.invalid/v1", "does not resolve"),
    ],
)
def test_what_is_not_a_plain_server_url_is_refused(dns, url, reason):
    with pytest.raises(HostRefused, match=reason):
        check_base_url(url)


# --- on save: the API, the settings page, the admin -------------------------------------------------


@pytest.fixture
def erin(db):
    return make_user("erin", api_key="sk-erin-secret-0123456789abcdEFGH")


@pytest.fixture
def erin_api(erin):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(erin)
    return api


def patch_profile(api, body: dict):
    return api.patch("/api/profile/", json.dumps(body), content_type="application/json")


def test_the_api_refuses_a_base_url_when_the_server_does_not_allow_them(erin_api, erin, settings):
    settings.USER_BASE_URL_ENABLED = False
    response = patch_profile(erin_api, {"openai_base_url": "https://openrouter.example/api/v1"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert "USER_BASE_URL_ENABLED is off" in body["fields"]["openai_base_url"]
    assert Profile.objects.get(user=erin).openai_base_url == ""


def test_the_api_refuses_an_internal_base_url_saying_why_and_saves_nothing(erin_api, erin, dns):
    dns.set("intranet.example.com", ["10.1.2.3"])
    new_key = "sk-erin-other-0123456789abcdefWXYZ"
    response = patch_profile(
        erin_api, {"openai_api_key": new_key, "openai_base_url": "https://intranet.example.com/v1"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "openai_base_url_refused"
    assert "intranet.example.com" in body["message"] and "a private address" in body["message"]
    assert "10.1.2.3" not in body["message"]  # which check failed, not what the name maps to
    assert body["settings_url"].endswith("/profile/settings/")
    assert "a private address" in body["fields"]["openai_base_url"]
    profile = Profile.objects.get(user=erin)
    assert profile.openai_base_url == "" and profile.openai_api_key != new_key  # neither was saved


def test_the_api_saves_a_public_base_url_and_shows_it(erin_api, erin, dns):
    dns.set("openrouter.example", [PUBLIC])
    response = patch_profile(erin_api, {"openai_base_url": "https://openrouter.example/api/v1/"})
    assert response.status_code == 200, response.content
    assert response.json()["openai_base_url"] == "https://openrouter.example/api/v1"
    assert erin_api.get("/api/profile/").json()["openai_base_url"] == "https://openrouter.example/api/v1"

    assert patch_profile(erin_api, {"openai_base_url": ""}).json()["openai_base_url"] is None
    assert Profile.objects.get(user=erin).openai_base_url == ""


def test_the_settings_page_offers_a_base_url_only_where_allowed(client, erin, settings):
    client.force_login(erin)
    assert 'name="base_url"' in client.get("/profile/settings/").content.decode()
    settings.USER_BASE_URL_ENABLED = False
    assert 'name="base_url"' not in client.get("/profile/settings/").content.decode()


def test_the_settings_page_refuses_an_internal_base_url(client, erin, dns):
    dns.set("metadata.example.com", ["169.254.169.254"])
    client.force_login(erin)
    response = client.post(
        "/profile/settings/", {"organization_id": "", "base_url": "https://metadata.example.com/v1"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "it resolves to a cloud metadata address" in html
    assert Profile.objects.get(user=erin).openai_base_url == ""


def test_the_settings_page_saves_a_public_base_url(client, erin, dns):
    dns.set("openrouter.example", [PUBLIC])
    client.force_login(erin)
    response = client.post(
        "/profile/settings/", {"organization_id": "", "base_url": "https://openrouter.example/api/v1"}
    )
    assert response.status_code == 302, response.content.decode()
    assert Profile.objects.get(user=erin).openai_base_url == "https://openrouter.example/api/v1"
    html = client.get("/profile/settings/").content.decode()
    assert "Base URL saved." in html
    assert 'value="https://openrouter.example/api/v1"' in html


def test_the_admin_refuses_an_internal_base_url_for_the_team_key(admin_client, dns):
    dns.set("ollama.example.com", ["192.168.0.10"])
    response = admin_client.post(
        "/admin/profiles/teamkey/add/",
        {"openai_organization_id": "", "openai_base_url": "https://ollama.example.com/v1"},
    )
    assert response.status_code == 200
    assert "it resolves to a private address" in response.content.decode()
    assert not TeamKey.objects.exists()


# --- at connection time -----------------------------------------------------------------------------


async def test_a_name_that_rebinds_to_loopback_after_saving_is_refused_before_connecting(
    alice, alice_token, dns, fake_openai, listener
):
    host = "rebind.example.com"
    dns.set(host, [PUBLIC], ["127.0.0.1"])  # public when saved, loopback ever after
    url = await sync_to_async(check_base_url)(f"https://{host}:{listener.port}/v1")
    await set_base_url(alice, url)

    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 400
    body = json_of(content)
    assert body["code"] == "openai_base_url_refused"
    assert "it resolves to a loopback address" in body["message"]
    assert body["settings_url"].endswith("/profile/settings/")
    assert dns.lookups == [host, host]  # once on save, once at connection time (not retried)
    await asyncio.sleep(0.2)
    assert listener.accepted == 0  # not even a TCP connection: no byte, so never the key
    assert fake_openai.requests == []


async def test_the_same_name_allowlisted_is_connected_to(alice, alice_token, dns, settings, listener):
    """The control for the test above: its listener does see a connection the guard lets through."""
    settings.UPSTREAM_ALLOWED_HOSTS = ["rebind-allowed.example.com"]
    dns.set("rebind-allowed.example.com", ["127.0.0.1"])
    settings.OPENAI_MAX_RETRIES = 0
    await set_base_url(alice, f"https://rebind-allowed.example.com:{listener.port}/v1")
    response, _ = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code in (502, 504)  # the listener speaks no TLS
    assert listener.accepted >= 1


async def test_an_allowlisted_loopback_server_gets_the_call_with_the_users_key(
    alice, alice_token, fake_openai, settings
):
    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OPENAI_BASE_URL = "https://api.openai.invalid/v1"  # the server's default is not used
    await set_base_url(alice, fake_openai.base_url)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200, content
    assert content.decode() == "tok0 tok1 tok2 tok3 tok4 "
    request = fake_openai.last_request
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {ALICE_KEY}"


async def test_an_allowlisted_name_is_resolved_by_our_resolver_at_connection_time(
    alice, alice_token, fake_openai, settings, dns
):
    settings.UPSTREAM_ALLOWED_HOSTS = ["models.lan"]
    dns.set("models.lan", ["127.0.0.1"])  # a name no real DNS knows: only our resolver does
    await set_base_url(alice, f"http://models.lan:{fake_port(fake_openai)}/v1")
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200, content
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"
    assert "models.lan" in dns.lookups


async def test_an_ip_literal_no_longer_allowed_is_refused_before_connecting(
    alice, alice_token, settings, listener, fake_openai
):
    settings.UPSTREAM_ALLOWED_HOSTS = []  # 127.0.0.1 was allowlisted when the URL was saved; no more
    await set_base_url(alice, f"http://127.0.0.1:{listener.port}/v1")
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 400
    assert json_of(content)["code"] == "openai_base_url_refused"
    assert "only https is allowed" in json_of(content)["message"]

    await set_base_url(alice, f"https://127.0.0.1:{listener.port}/v1")
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert json_of(content)["code"] == "openai_base_url_refused"
    assert "it is a loopback address" in json_of(content)["message"]
    await asyncio.sleep(0.2)
    assert listener.accepted == 0


async def test_v1_models_go_to_the_users_server(alice, alice_token, fake_openai, settings):
    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.OPENAI_BASE_URL = "https://api.openai.invalid/v1"
    await set_base_url(alice, fake_openai.base_url)
    response = await AsyncClient().get("/v1/models", headers={"Authorization": f"Bearer {alice_token}"})
    assert response.status_code == 200
    assert fake_openai.last_request.path == "/v1/models"
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"


async def test_a_stored_base_url_is_ignored_once_the_server_turns_them_off(
    alice, alice_token, fake_openai, settings, listener
):
    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1"]
    await set_base_url(alice, f"http://127.0.0.1:{listener.port}/v1")
    settings.USER_BASE_URL_ENABLED = False
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 200, content  # the server's default: the fake
    assert fake_openai.last_request.headers["authorization"] == f"Bearer {ALICE_KEY}"
    assert listener.accepted == 0


@pytest.fixture
async def redirecting_server(fake_openai) -> Callable[[], str]:
    """An allowlisted server that answers every request with a redirect to the fake upstream."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(f"{fake_openai.base_url}/chat/completions")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://localhost:{port}/v1"
    await runner.cleanup()


async def test_redirects_are_not_followed(alice, alice_token, fake_openai, settings, redirecting_server, dns):
    settings.UPSTREAM_ALLOWED_HOSTS = ["localhost"]
    dns.set("localhost", ["127.0.0.1"])
    await set_base_url(alice, redirecting_server)
    response, content = await post_chat(AsyncClient(), chat_body(), token=alice_token)
    assert response.status_code == 502
    assert json_of(content)["code"] == "openai_error"
    assert fake_openai.requests == []  # the redirect's target never heard of it


# --- the pool of clients for these URLs -------------------------------------------------------------


async def test_the_least_recently_used_client_is_closed_once_its_last_call_ends(
    fake_openai, settings, monkeypatch, dns
):
    """Past MAX_GUARDED_CLIENTS the oldest goes; a stream still using it finishes first."""
    from tests.fake_openai import Scenario

    monkeypatch.setattr(upstream_client, "MAX_GUARDED_CLIENTS", 1)
    settings.UPSTREAM_ALLOWED_HOSTS = ["127.0.0.1", "upstream-b.lan"]
    dns.set("upstream-b.lan", ["127.0.0.1"])
    first = OpenAICredentials(api_key=ALICE_KEY, organization=None, base_url=fake_openai.base_url)
    second = OpenAICredentials(
        api_key=ALICE_KEY, organization=None, base_url=f"http://upstream-b.lan:{fake_port(fake_openai)}/v1"
    )
    fake_openai.scenario = Scenario(pieces=["a", "b", "c"], gap=0.1)
    params = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}

    stream = await open_stream(user_id=1, credentials=first, params=params)
    async with upstream_client.client_for(first) as first_client:
        pass
    await upstream_client.get_models(credentials=second)  # evicts the first: still in use, kept open
    assert not first_client.is_closed()
    async with stream:
        body = b"".join([chunk async for chunk in stream.chunks])
    assert body.count(b'"content"') >= 3 and body.rstrip().endswith(b"[DONE]")  # not cut off
    assert first_client.is_closed()  # closed with the stream, its last call

    async with upstream_client.client_for(second) as second_client:
        pass
    async with upstream_client.client_for(first) as again:  # back as a new client; the second goes
        assert again is not first_client
    assert second_client.is_closed()
