"""The one module that relies on Django's internals. Each reach is here for a measured gain, and each
is asserted by tests/test_dependency_contracts.py, so a Django upgrade that moves one fails a test
instead of silently making requests slower. Versions are locked (requirements.lock).

1. **Middleware hooks on the event loop** (`OnLoopMixin` and the twins). Under ASGI, Django runs every
   `process_request` / `process_view` / `process_response` hook of a MiddlewareMixin middleware through
   `sync_to_async`: about 15 thread hops per request for the eight in MIDDLEWARE, ~90 µs of CPU each,
   the largest share of a streaming request's CPU before its first byte (docs/performance.md). None of
   these hooks does I/O, with three exceptions that still go to a thread: the session save after a
   request modified its session, storing messages (which may spill into the session), and CSRF when
   its secret lives in the session (CSRF_USE_SESSIONS). Each twin is a subclass that only changes how
   its hooks are called. Relies on: `MiddlewareMixin.__acall__` being the only async entry point of
   these classes (none defines its own). Dropping it: ~0.8 ms more CPU per request.
2. **No thread of its own for a request to an async view** (`ChatASGIHandler.__call__`). Django
   enters a ThreadSensitiveContext for every request: a new single-thread executor, so a new OS thread
   the first time the request runs sync code (the `request_started` signal always does), alive until
   the response ends. For a stream that is minutes of an idle thread (~65 KiB each) and a thread start
   per request. Async views here do their little sync work (signal receivers, the token lookup) on the
   process's one shared sync thread instead, where a database connection can also be reused. Sync views
   (the pages, the admin, the DRF views) keep Django's per-request thread. Relies on:
   `ASGIHandler.__call__` doing nothing but that context around `handle()`. Dropping it: ~0.85 ms
   more CPU per request and a thread per open stream.
3. **A query compiled once** (`compiled_sql`, `converted_row`). Building and compiling the token ->
   user -> profile query through the ORM costs about ten times what running it does (~430 µs against
   ~45 µs on SQLite): the ORM compiles it once per database, a plain cursor runs it, and the ORM's own
   converters and `Model.from_db` turn the row into instances, as a QuerySet would. Relies on:
   `Query.get_compiler().as_sql()`, `ops.get_db_converters()` and `Col.get_db_converters()`.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import get_messages
from django.contrib.messages import middleware as messages
from django.contrib.messages.storage.base import BaseStorage
from django.contrib.sessions import middleware as sessions
from django.core.handlers.asgi import ASGIHandler
from django.db.models import Field, QuerySet
from django.db.models.expressions import Col
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, security
from django.urls import Resolver404, get_resolver
from django.utils.deprecation import MiddlewareMixin

# --- 1. Middleware hooks on the event loop --------------------------------------------------------


class OnLoopMixin:
    """MiddlewareMixin.__acall__ without the thread hops (its hooks must not do blocking I/O)."""

    process_request: Any
    process_response: Any
    get_response: Any

    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        return False

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_needs_thread(request, response):
                return await sync_to_async(self.process_response, thread_sensitive=True)(request, response)
            response = self.process_response(request, response)
        return response


class SecurityMiddleware(OnLoopMixin, security.SecurityMiddleware):
    pass


class ContentSecurityPolicyMiddleware(OnLoopMixin, csp.ContentSecurityPolicyMiddleware):
    pass


class SessionMiddleware(OnLoopMixin, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Saving writes to the session store (database); reading flags and setting cookies does not.
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(OnLoopMixin, common.CommonMiddleware):
    pass


class CsrfViewMiddleware(OnLoopMixin, csrf.CsrfViewMiddleware):
    """With CSRF_USE_SESSIONS every hook reads or writes the session (database): all on a thread then."""

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        if settings.CSRF_USE_SESSIONS:
            return await MiddlewareMixin.__acall__(self, request)
        return await super().__acall__(request)

    # The handler calls process_view directly, after URL resolution: async, so it is not given a hop.
    # (An async override of a sync method, on purpose: hence the `type: ignore`.)
    async def process_view(  # type: ignore[override]
        self,
        request: HttpRequest,
        callback: Any,
        callback_args: Any,
        callback_kwargs: Any,
    ) -> HttpResponseBase | None:
        if settings.CSRF_USE_SESSIONS:
            return await sync_to_async(super().process_view, thread_sensitive=True)(
                request, callback, callback_args, callback_kwargs
            )
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(OnLoopMixin, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(OnLoopMixin, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Storing messages may fall back to the session (database) when they outgrow the cookie.
        storage = get_messages(request)
        return isinstance(storage, BaseStorage) and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnLoopMixin, clickjacking.XFrameOptionsMiddleware):
    pass


# Django's middleware -> the twin the handler runs instead. MIDDLEWARE keeps naming Django's own
# classes: `check --deploy` recognises the security, CSRF and clickjacking middleware by dotted path.
ON_LOOP_TWINS = {
    "django.middleware.security.SecurityMiddleware": SecurityMiddleware,
    "django.middleware.csp.ContentSecurityPolicyMiddleware": ContentSecurityPolicyMiddleware,
    "django.contrib.sessions.middleware.SessionMiddleware": SessionMiddleware,
    "django.middleware.common.CommonMiddleware": CommonMiddleware,
    "django.middleware.csrf.CsrfViewMiddleware": CsrfViewMiddleware,
    "django.contrib.auth.middleware.AuthenticationMiddleware": AuthenticationMiddleware,
    "django.contrib.messages.middleware.MessageMiddleware": MessageMiddleware,
    "django.middleware.clickjacking.XFrameOptionsMiddleware": XFrameOptionsMiddleware,
}


def _dotted(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


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


# --- 2. The ASGI handler --------------------------------------------------------------------------


class ChatASGIHandler(ASGIHandler):
    """Django's ASGIHandler with the on-loop twins (1.) and no per-request thread for async views (2.)."""

    def load_middleware(self, is_async: bool = False) -> None:
        twins = [
            _dotted(ON_LOOP_TWINS[path]) if path in ON_LOOP_TWINS else path for path in settings.MIDDLEWARE
        ]
        with _middleware_setting(twins):
            super().load_middleware(is_async=is_async)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and routes_to_async_view(scope):
            await self.handle(scope, receive, send)  # Django's handling, without ThreadSensitiveContext
            return
        await super().__call__(scope, receive, send)


def routes_to_async_view(scope: dict[str, Any]) -> bool:
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return _async_view_at(settings.ROOT_URLCONF, path)


@lru_cache(maxsize=512)  # the streaming paths repeat; resolving costs as much as a middleware
def _async_view_at(urlconf: str, path: str) -> bool:
    try:
        match = get_resolver(urlconf).resolve(path)
    except Resolver404:
        return False
    return iscoroutinefunction(match.func)


# --- 3. A query compiled once ---------------------------------------------------------------------


def compiled_sql(queryset: QuerySet[Any], alias: str) -> tuple[str, list[Any]]:
    """The SQL and parameters the ORM would run for `queryset` on database `alias`."""
    sql, params = queryset.query.get_compiler(using=alias).as_sql()
    return sql, list(params)


def columns_of(fields: list[Field]) -> list[Col]:
    return [field.get_col(field.model._meta.db_table) for field in fields]


def converted_row(values: tuple[Any, ...], columns: list[Col], connection: Any) -> list[Any]:
    """What SQLCompiler.apply_converters does to a row: the backend's converters, then the field's own."""
    out = []
    for value, col in zip(values, columns, strict=True):
        for converter in [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]:
            value = converter(value, col, connection)
        out.append(value)
    return out
