"""Django's ASGIHandler, minus the thread work a streaming request does not need.

Two changes, both about what a request costs before its first byte (README, Performance):

- **Middleware hooks on the event loop.** MIDDLEWARE lists Django's own classes (so Django's
  `check --deploy` sees exactly what it expects), and this handler builds its chain from their
  on-loop twins in `chatproject.middleware`: the same classes, whose hooks run on the event loop
  instead of one `sync_to_async` thread hop each (about 15 per request for the eight).
- **No thread of its own for a request to an async view.** Django enters a ThreadSensitiveContext
  for every request: a new single-thread executor, so a new OS thread the first time the request
  runs sync code (the `request_started` signal always does), alive until the response ends. For
  a stream that is minutes of an idle thread (~65 KiB of memory each) and a thread start per
  request. Async views here do their little sync work (signal receivers, the token lookup) on the
  process's one shared sync thread instead, where a database connection can also be reused.
  Sync views (the pages, the admin, the DRF views) keep Django's per-request thread: they block
  for as long as they run, and must not queue behind one another.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, get_resolver

# Django's middleware -> the twin this handler runs instead (a subclass: see chatproject/middleware.py).
ON_LOOP_TWINS = {
    "django.middleware.security.SecurityMiddleware": "chatproject.middleware.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware": "chatproject.middleware.ContentSecurityPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware": "chatproject.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware": "chatproject.middleware.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware": "chatproject.middleware.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware": "chatproject.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware": "chatproject.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware": "chatproject.middleware.XFrameOptionsMiddleware",
}


@contextmanager
def _middleware_setting(paths: list[str]) -> Iterator[None]:
    # BaseHandler.load_middleware reads settings.MIDDLEWARE and nothing else; swapping the list for
    # the duration of that one call (at start-up, before any request) reuses Django's loader whole.
    original = settings.MIDDLEWARE
    settings.MIDDLEWARE = paths
    try:
        yield
    finally:
        settings.MIDDLEWARE = original


class ChatASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        with _middleware_setting([ON_LOOP_TWINS.get(path, path) for path in settings.MIDDLEWARE]):
            super().load_middleware(is_async=is_async)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and _routes_to_async_view(scope):
            await self.handle(scope, receive, send)  # Django's handling, without ThreadSensitiveContext
            return
        await super().__call__(scope, receive, send)


def _routes_to_async_view(scope: dict[str, Any]) -> bool:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    return _async_view_at(settings.ROOT_URLCONF, path)


@lru_cache(maxsize=512)  # the streaming paths repeat; resolving costs as much as a middleware
def _async_view_at(urlconf: str, path: str) -> bool:
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)
