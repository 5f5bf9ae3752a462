"""Who is calling, for the async API views: a session (with CSRF) or an API token.

DRF has no async views, so this does what its SessionAuthentication and our token authentication do
(api_auth.py), in one query for token callers (token, user and profile together: token_query.py).
"""

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware

from core.errors import ApiError, not_authenticated
from core.tokens import token_from_header

from .models import Profile
from .token_query import TokenMatch
from .tokens import TokenRefused, token_authenticate


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    # Session callers are browsers: hold them to CSRF exactly as a normal Django view would.
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    # No view to pass: process_view only looks for a csrf_exempt attribute on it.
    return check.process_view(request, None, (), {})  # type: ignore[arg-type]


async def authenticate(request: HttpRequest) -> tuple[User, Profile]:
    """The caller and their profile, or ApiError(401/403).

    The lookups end by releasing the database connection as Django does when a response ends
    (closed or returned to the pool, unless CONN_MAX_AGE keeps it): a stream stays open for minutes
    and must not hold one meanwhile. Under chatproject/handler.py the lookups run on the process's
    shared sync thread, whose kept connection serves every request; anything later in the request
    that needs the database gets a connection again.
    """
    token = token_from_header(request)
    if token is not None:

        def load_token() -> TokenMatch:
            try:
                return token_authenticate(token=token)  # the lookup, and last_used_at when due
            finally:
                _release_connections()

        try:
            found = await sync_to_async(load_token)()  # where the async ORM would run it
        except TokenRefused as refused:
            raise ApiError(
                401, "invalid_token", refused.message, headers={"WWW-Authenticate": 'Token realm="api"'}
            ) from None
        request.api_token_id = found.token_id  # type: ignore[attr-defined]  # see authenticated_token_id
        return found.user, found.profile if found.profile is not None else await _profile_of(found.user)

    user = await request.auser()
    if not user.is_authenticated:
        raise not_authenticated()
    if _csrf_failure(request) is not None:
        raise ApiError(403, "csrf_failed", "CSRF check failed: reload the page and try again.")
    return user, await _profile_of(user)


def authenticated_token_id(request: HttpRequest) -> int | None:
    """The id of the API token authenticate() accepted for this request; None for a session (usage
    records name the token a call came with)."""
    return getattr(request, "api_token_id", None)


async def _profile_of(user: User) -> Profile:
    # Profiles are made for every new user; get_or_create covers users older than the signal.
    def get_or_create() -> Profile:
        try:
            return Profile.objects.get_or_create(user=user)[0]
        finally:
            _release_connections()

    return await sync_to_async(get_or_create)()


def _release_connections() -> None:
    """Django's close_old_connections(), minus connections inside a transaction (tests run in one)."""
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
