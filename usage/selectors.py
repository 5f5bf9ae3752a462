"""Reads of the usage records: totals per day, model or entry point; per day and model (the chart);
per user and model (the admin); the records themselves (CSV). All over a period of whole UTC days.

Costs are summed over the calls that have one: a group where no call has a price has cost None, a
group where some do has the sum of those (the unpriced calls count as nothing; the page says how
many calls were priced).
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate

from .models import UsageRecord

GroupBy = Literal["day", "model", "entry_point"]
GROUPS: tuple[GroupBy, ...] = ("day", "model", "entry_point")
PAGE_DAYS = 30  # the usage page and the API's default period


@dataclass(frozen=True, slots=True)
class Period:
    """Whole UTC days, both ends included."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time.min, tzinfo=UTC)

    @property
    def end(self) -> datetime:  # exclusive
        return datetime.combine(self.last + timedelta(days=1), time.min, tzinfo=UTC)

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def last_days(days: int = PAGE_DAYS, *, today: date | None = None) -> Period:
    last = today or datetime.now(UTC).date()
    return Period(last - timedelta(days=days - 1), last)


def month_start(now: datetime | None = None) -> datetime:
    """00:00 UTC on the first of the current month: where a monthly budget starts counting."""
    now = now or datetime.now(UTC)
    return datetime(now.year, now.month, 1, tzinfo=UTC)


def records_in(*, user_id: int | None, period: Period) -> QuerySet[UsageRecord]:
    """A user's records in the period (everyone's if user_id is None), oldest first."""
    records = UsageRecord.objects.filter(started_at__gte=period.start, started_at__lt=period.end)
    if user_id is not None:
        records = records.filter(user_id=user_id)
    return records.order_by("started_at", "id")


TOTALS = {
    "calls": Count("id"),
    "prompt_tokens": Sum("prompt_tokens"),
    "completion_tokens": Sum("completion_tokens"),
    "cached_tokens": Sum("cached_tokens"),
    "reasoning_tokens": Sum("reasoning_tokens"),
    "estimated_calls": Count("id", filter=Q(estimated=True)),
    "priced_calls": Count("cost"),
    "cost": Sum("cost"),
}
TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    for name in TOKEN_FIELDS:  # Sum over no rows is None
        row[name] = row[name] or 0
    return row


def usage_totals(*, user_id: int | None, period: Period, group_by: GroupBy) -> list[dict[str, Any]]:
    """One row per day (a date), model or entry point, in that order: `key` and the TOTALS."""
    records = records_in(user_id=user_id, period=period).order_by()
    key = TruncDate("started_at", tzinfo=UTC) if group_by == "day" else F(group_by)
    rows = records.annotate(key=key).values("key").annotate(**TOTALS).order_by("key")
    return [_clean(dict(row)) for row in rows]


def usage_by_day_and_model(*, user_id: int, period: Period) -> list[dict[str, Any]]:
    """Rows of (day, model) with tokens (prompt + completion) and cost: what the chart stacks."""
    rows = (
        records_in(user_id=user_id, period=period)
        .order_by()
        .annotate(day=TruncDate("started_at", tzinfo=UTC))
        .values("day", "model")
        .annotate(prompt=Sum("prompt_tokens"), completion=Sum("completion_tokens"), cost=Sum("cost"))
        .order_by("day", "model")
    )
    return [
        {
            "day": row["day"],
            "model": row["model"],
            "tokens": (row["prompt"] or 0) + (row["completion"] or 0),
            "cost": row["cost"],
        }
        for row in rows
    ]


def usage_by_user_and_model(*, period: Period, order: str) -> list[dict[str, Any]]:
    """Everyone's totals per (user, model) in the period (the admin), ordered by `order`: one of
    the TOTALS names or "user" / "model", with "-" for descending."""
    rows = (
        records_in(user_id=None, period=period)
        .order_by()
        .values("user_id", "user__username", "model")
        .annotate(**TOTALS)
    )
    name = order.removeprefix("-")
    field = "user__username" if name == "user" else name
    direction = "-" if order.startswith("-") else ""
    return [_clean(dict(row)) for row in rows.order_by(f"{direction}{field}", "user__username", "model")]


def month_spend(*, user_id: int, since: datetime) -> Decimal:
    """What the user's priced calls since `since` cost (unpriced calls count as nothing)."""
    spent = UsageRecord.objects.filter(user_id=user_id, started_at__gte=since).aggregate(total=Sum("cost"))
    return spent["total"] or Decimal(0)
