"""On-loop twins of Django's own middleware: the ASGI handler (chatproject/handler.py) runs these
in place of the classes MIDDLEWARE names.

Under ASGI, Django runs every `process_request` / `process_view` / `process_response` hook of a
MiddlewareMixin middleware through `sync_to_async`: about 15 thread hops per request for the eight
in MIDDLEWARE, the largest share of a streaming request's CPU before its first byte (see README,
Performance). None of these hooks does I/O, with three exceptions that still go to a thread: the
session save after a request modified its session, storing messages (which may spill into the
session), and CSRF when its secret lives in the session (CSRF_USE_SESSIONS).

Behaviour is otherwise Django's, hook for hook: each twin is a subclass that only changes how its
hooks are called.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import clickjacking, common, csp, csrf, security
from django.utils.deprecation import MiddlewareMixin


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
            return await MiddlewareMixin.__acall__(self, request)  # type: ignore[arg-type]
        return await super().__acall__(request)

    # The handler calls process_view directly, after URL resolution: async, so it is not given a hop.
    async def process_view(self, request: HttpRequest, callback: Any, callback_args: Any,  # type: ignore[override]
                           callback_kwargs: Any) -> HttpResponseBase | None:
        if settings.CSRF_USE_SESSIONS:
            return await sync_to_async(super().process_view, thread_sensitive=True)(
                request, callback, callback_args, callback_kwargs)
        return super().process_view(request, callback, callback_args, callback_kwargs)


class AuthenticationMiddleware(OnLoopMixin, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(OnLoopMixin, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Storing messages may fall back to the session (database) when they outgrow the cookie.
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class XFrameOptionsMiddleware(OnLoopMixin, clickjacking.XFrameOptionsMiddleware):
    pass
