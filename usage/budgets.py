"""Monthly budgets: a cost ceiling per user (models.Budget), checked before every new upstream call.

Past the ceiling a new request gets 429 `budget_exceeded`, with a link to the usage page; an answer
already streaming is not cut. What the user has spent this month comes from the database (priced
calls since the 1st, 00:00 UTC), so every worker process sees the same figure. It is kept in the
cache for USAGE_BUDGET_CACHE_SECONDS (5 by default) per user, so a request costs no query most of
the time; in local memory that is per process, with REDIS_URL it is shared. How stale the check can
be: the calls that ended in the last USAGE_BUDGET_CACHE_SECONDS, plus those still streaming (a call
counts once it has ended and its record is written). Saving a budget drops its cached figure, so a
new ceiling applies at once (in every process with Redis; in the one that saved it otherwise).

While nobody has a budget (the default) a request costs one cache read, and a process one query per
USAGE_BUDGET_CACHE_SECONDS; once someone has, a user without one costs the same per user. If the
cache or the database cannot be reached the request is allowed (logged): budgets protect a wallet,
they must not take the service down.
"""

import logging
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connections
from django.db.models.signals import post_delete, post_save
from django.http import HttpRequest
from django.urls import reverse

from core.errors import ApiError

from .models import Budget
from .selectors import month_spend, month_start

logger = logging.getLogger(__name__)

KEY_PREFIX = "usage-budget"
ANY_KEY = f"{KEY_PREFIX}:any"  # False: nobody has a budget, so nobody is checked further
_NO_BUDGET = "none"


def _key(user_id: int) -> str:
    return f"{KEY_PREFIX}:{user_id}"


def budget_for(*, user: User) -> Budget | None:
    return Budget.objects.filter(user=user).first()


def budget_set_user_limit(*, user: User, limit: Decimal | None) -> Budget:
    """The ceiling the user sets for themself (None: none of theirs)."""
    budget, _ = Budget.objects.get_or_create(user=user)
    budget.user_limit = limit
    budget.save(update_fields=["user_limit", "updated_at"])
    return budget


def budget_set_staff_limit(*, user: User, limit: Decimal | None) -> Budget:
    """The ceiling staff set for the user (None: none)."""
    budget, _ = Budget.objects.get_or_create(user=user)
    budget.staff_limit = limit
    budget.save(update_fields=["staff_limit", "updated_at"])
    return budget


def budget_forget(*, user_id: int) -> None:
    """Drop the cached figures of a user, and whether anyone has a budget (a budget changed)."""
    try:
        caches["default"].delete_many([_key(user_id), ANY_KEY])
    except Exception:  # they expire on their own
        logger.warning("could not drop the cached budget of user %s", user_id, exc_info=True)


def _forget_saved(sender: Any, instance: Budget, **_: Any) -> None:
    budget_forget(user_id=instance.user_id)


post_save.connect(_forget_saved, sender=Budget, dispatch_uid="usage.budget_forget.save")
post_delete.connect(_forget_saved, sender=Budget, dispatch_uid="usage.budget_forget.delete")


def budgets_exist() -> bool:
    """Whether anyone has a ceiling at all (sync: one query)."""
    return Budget.objects.exclude(staff_limit=None, user_limit=None).exists()


def budget_status(*, user_id: int) -> tuple[Decimal, Decimal] | None:
    """(ceiling, spent this month) for a user with a ceiling, else None. Sync: one or two queries."""
    budget = Budget.objects.filter(user_id=user_id).only("staff_limit", "user_limit").first()
    limit = budget.limit if budget is not None else None
    if limit is None:
        return None
    return limit, month_spend(user_id=user_id, since=month_start())


_MISSING = object()
Status = tuple[Decimal, Decimal] | None


def _from_cache(user_id: int) -> Any:
    """The cached status, or _MISSING. Nobody with a budget (the default) answers for everyone."""
    cache = caches["default"]
    cached = cache.get_many([ANY_KEY, _key(user_id)])
    if cached.get(ANY_KEY) is False:
        return None
    mine = cached.get(_key(user_id), _MISSING)
    if mine is _MISSING or mine == _NO_BUDGET:
        return None if mine == _NO_BUDGET else _MISSING
    return Decimal(mine[0]), Decimal(mine[1])


def _status(user_id: int) -> Status:
    """The status from the cache, else from the database (then cached). Sync."""
    status = _from_cache(user_id)
    if status is not _MISSING:
        return status
    cache, timeout = caches["default"], settings.USAGE_BUDGET_CACHE_SECONDS
    try:
        if not budgets_exist():
            cache.set(ANY_KEY, False, timeout=timeout)
            return None
        cache.set(ANY_KEY, True, timeout=timeout)
        status = budget_status(user_id=user_id)
    finally:
        for connection in connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close_if_unusable_or_obsolete()
    value = _NO_BUDGET if status is None else (str(status[0]), str(status[1]))
    cache.set(_key(user_id), value, timeout=timeout)
    return status


def _in_process() -> bool:
    # Local memory is a dict behind a lock: no I/O. Redis is a network call, the database one too.
    return isinstance(caches["default"], (LocMemCache, DummyCache))


def budget_exceeded(request: HttpRequest, *, limit: Decimal, spent: Decimal) -> ApiError:
    try:
        usage_url = request.build_absolute_uri(reverse("usage"))
    except Exception:  # a request whose host we refuse: the path alone
        usage_url = reverse("usage")
    return ApiError(
        429,
        "budget_exceeded",
        f"Your monthly budget of ${limit:.2f} is used up (${spent:.2f} spent since the 1st, UTC). "
        f"See your usage at {usage_url}; the budget starts again on the 1st of next month.",
    )


async def budget_check(*, request: HttpRequest, user_id: int) -> None:
    """ApiError(429 budget_exceeded) if the user has spent their monthly budget; else nothing."""
    try:
        # In local memory a cached answer costs no thread hop (the usual case: no budget, cached).
        cached: Any = _from_cache(user_id) if _in_process() else _MISSING
        status: Status = await sync_to_async(_status)(user_id) if cached is _MISSING else cached
    except Exception:
        logger.warning("budget check unavailable; allowing the request (user %s)", user_id, exc_info=True)
        return
    if status is not None and status[1] >= status[0]:
        raise budget_exceeded(request, limit=status[0], spent=status[1])
