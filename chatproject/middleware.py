"""Django's own middleware, with their hooks run on the event loop.

Under ASGI, Django runs every `process_request` / `process_response` hook of a MiddlewareMixin
middleware through `sync_to_async`: about 15 thread hops per request for the eight in MIDDLEWARE,
the largest share of a streaming request's CPU before its first byte (see README, Performance).
None of these hooks does I/O, with two exceptions that still go to a thread: the session save
after a request modified its session, and storing messages (which may spill into the session).

Behaviour is otherwise Django's, hook for hook; under WSGI (and Django's sync test client) these
classes behave as the originals.
"""

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponseBase
from django.middleware import common, csp


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


class ContentSecurityPolicyMiddleware(OnLoopMixin, csp.ContentSecurityPolicyMiddleware):
    pass


class SessionMiddleware(OnLoopMixin, sessions.SessionMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Saving writes to the session store (database); reading flags and setting cookies does not.
        session = getattr(request, "session", None)
        return session is not None and (session.modified or settings.SESSION_SAVE_EVERY_REQUEST)


class CommonMiddleware(OnLoopMixin, common.CommonMiddleware):
    pass


class AuthenticationMiddleware(OnLoopMixin, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(OnLoopMixin, messages.MessageMiddleware):
    def response_needs_thread(self, request: HttpRequest, response: HttpResponseBase) -> bool:
        # Storing messages may fall back to the session (database) when they outgrow the cookie.
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)

