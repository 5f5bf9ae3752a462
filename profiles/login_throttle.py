"""Failed password logins per client address, counted in Django's cache: one mechanism for every
place a password is checked (the login page, the admin's login page, POST /api/token/).

`LOGIN_FAILURE_RATE` ("5/min", "20/hour", "5/30s"; empty: off) allows that many failures from one
address in a window that opens at its first failure; past it every login from that address is
refused, without checking the password, until the window closes. Only failures count: a user who
types the right password is never slowed down by their own successes.

The count is `cache.incr` (atomic: INCR on Redis, under a lock in local memory), so a burst of
parallel guesses cannot slip through between a read and a write. With REDIS_URL every worker
shares it; in local memory (the default) each process counts on its own. If the cache cannot be
reached, logins are allowed (logged): the throttle protects accounts, it must not lock everyone out.

The address is the one DRF's throttles use (NUM_PROXIES in REST_FRAMEWORK): the peer address by
default, which a client cannot forge; behind N proxies, the Nth address from the end of
X-Forwarded-For.
"""

import logging
import math
import re
import time

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger("profiles.login")

KEY_PREFIX = "login-failures"
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# DRF's spelling ("5/min", "20/hour": only the period's first letter counts), plus an optional
# multiple ("5/30s") so a test or a cautious operator can pick a window that is not a whole unit.
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([smhd])[a-z]*\s*", re.IGNORECASE)
_USERNAME_IN_LOG = 150  # the user model's own max_length: past it, the rest is noise


def login_failure_rate(rate: str | None) -> tuple[int, int] | None:
    """(failures allowed, window in seconds) for a LOGIN_FAILURE_RATE value; None: not throttled."""
    if rate is None or not rate.strip() or rate.strip().lower() in {"none", "off", "0"}:
        return None
    match = _RATE.fullmatch(rate)
    if match is None or int(match[1]) < 1 or match[2] == "0":
        raise ImproperlyConfigured(
            f"LOGIN_FAILURE_RATE {rate!r} is not a rate: write failures/period, e.g. 5/min, 20/hour, 5/30s."
        )
    return int(match[1]), int(match[2] or 1) * _PERIODS[match[3].lower()]


def login_client_address(request: HttpRequest | Request) -> str:
    """The caller's address, exactly as DRF's throttles compute it (NUM_PROXIES)."""
    # get_ident reads only .headers and .META, which Django's HttpRequest has too (the stubs say Request).
    address = BaseThrottle().get_ident(request) or "unknown"  # type: ignore[arg-type]
    return address[:100]  # a cache key, whatever a proxy put in X-Forwarded-For


def login_wait_seconds(*, address: str) -> int | None:
    """Seconds until a login from this address may be tried again; None: it may be tried now."""
    rate = login_failure_rate(settings.LOGIN_FAILURE_RATE)
    if rate is None:
        return None
    limit, window = rate
    count_key, since_key = _keys(address)
    try:
        values = cache.get_many([count_key, since_key])
    except Exception:
        logger.exception("Login throttle: the cache cannot be reached; allowing the login")
        return None
    if values.get(count_key, 0) < limit:
        return None
    since = values.get(since_key)
    if since is None:  # the window closed between the two keys' expiries
        return None
    return max(1, math.ceil(since + window - time.time()))


def login_failure_record(*, address: str, username: str) -> None:
    """Log a failed password login (never the password) and count it against the address."""
    logger.warning("Failed login for username %r from %s", username[:_USERNAME_IN_LOG], address)
    rate = login_failure_rate(settings.LOGIN_FAILURE_RATE)
    if rate is None:
        return
    limit, window = rate
    count_key, since_key = _keys(address)
    try:
        cache.add(since_key, time.time(), window)  # the window opens at the first failure
        cache.add(count_key, 0, window)
        try:
            count = cache.incr(count_key)
        except ValueError:  # it expired between add() and incr(): this failure opens a new window
            cache.set_many({since_key: time.time(), count_key: 1}, window)
            count = 1
    except Exception:
        logger.exception("Login throttle: the cache cannot be reached; this failure is not counted")
        return
    if count == limit:
        logger.warning(
            "Logins from %s refused for up to %d s: %d failed logins (LOGIN_FAILURE_RATE %s)",
            address,
            window,
            count,
            settings.LOGIN_FAILURE_RATE,
        )


def login_refusal_record(*, address: str, wait: int) -> None:
    """A login refused because its address is throttled (its password was not checked)."""
    logger.info("Login from %s refused: throttled for %d s more", address, wait)


def login_throttled_message(wait: int) -> str:
    after = f"{wait} seconds" if wait < 120 else f"{math.ceil(wait / 60)} minutes"
    return f"Too many failed logins from your address. Try again in {after}."


def _keys(address: str) -> tuple[str, str]:
    return f"{KEY_PREFIX}:{address}:count", f"{KEY_PREFIX}:{address}:since"
