"""Who is calling, for the async API views: a session (with CSRF) or a DRF token.

DRF has no async views, so this does what its SessionAuthentication and TokenAuthentication do, in
one query for token callers (token, user and profile together).
"""

from asgiref.sync import sync_to_async
from django.contrib.auth.models import AbstractBaseUser
from django.db import connections
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework.authtoken.models import Token

from profiles.models import Profile

from .errors import ApiError, not_authenticated

TOKEN_SCHEMES = (b"token", b"bearer")


def _token_from_header(request: HttpRequest) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower().encode() in TOKEN_SCHEMES and value.strip():
        return value.strip()
    return None


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    # Session callers are browsers: hold them to CSRF exactly as a normal Django view would.
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, None, (), {})


async def authenticate(request: HttpRequest) -> tuple[AbstractBaseUser, Profile]:
    """The caller and their profile, or ApiError(401/403).

    The lookups end by releasing the request's database connection (as Django does when a response
    ends, CONN_MAX_AGE permitting): a stream stays open for minutes and must not hold a database
    connection meanwhile (on SQLite ~90 KiB of memory per open stream; on PostgreSQL a server
    connection each). Anything later in the request that needs the database reconnects.
    """
    token_key = _token_from_header(request)
    if token_key is not None:

        def load_token() -> Token | None:
            try:
                # [:1] rather than first(): the key is unique, so first()'s ORDER BY and its extra
                # query machinery only cost time (~90 µs of ~390 µs per query, measured on SQLite).
                return next(iter(Token.objects.select_related("user__profile").filter(key=token_key)[:1]), None)
            finally:
                _release_connections()

        token = await sync_to_async(load_token)()  # the request's thread, as the async ORM uses
        if token is None or not token.user.is_active:
            raise ApiError(401, "invalid_token", "Invalid or revoked API token.",
                           headers={"WWW-Authenticate": 'Token realm="api"'})
        user = token.user
        try:
            return user, user.profile  # loaded by select_related: no query here
        except Profile.DoesNotExist:
            return user, await _profile_of(user)

    user = await request.auser()
    if not user.is_authenticated:
        raise not_authenticated()
    if _csrf_failure(request) is not None:
        raise ApiError(403, "csrf_failed", "CSRF check failed: reload the page and try again.")
    return user, await _profile_of(user)


async def _profile_of(user: AbstractBaseUser) -> Profile:
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
