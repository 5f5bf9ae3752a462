"""Query parameters shared by GET /api/usage/ and the CSV export: the period (?from=&to=)."""

from collections.abc import Mapping
from datetime import date, timedelta

from core.errors import ApiError

from .selectors import PAGE_DAYS, Period, last_days

MAX_DAYS = 3660  # ten years: enough for any report, and a bound on what one request reads


def _day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ApiError(
            400,
            "invalid_request",
            f"'{name}' must be a date as YYYY-MM-DD.",
            fields={name: "A date as YYYY-MM-DD, e.g. 2026-11-30."},
        ) from None


def period_from(query: Mapping[str, str]) -> Period:
    """?from=&to= (UTC days, both included). Default: `to` today, `from` PAGE_DAYS - 1 days before
    `to`. ApiError(400) if either is not a date, `from` is after `to`, or the period is too long."""
    end = _day(query["to"], "to") if query.get("to") else last_days().last
    start = _day(query["from"], "from") if query.get("from") else end - timedelta(days=PAGE_DAYS - 1)
    if start > end:
        raise ApiError(400, "invalid_request", "'from' is after 'to'.", fields={"from": "Not after 'to'."})
    if (end - start).days >= MAX_DAYS:
        raise ApiError(
            400,
            "invalid_request",
            f"The period is longer than {MAX_DAYS} days.",
            fields={"to": f"At most {MAX_DAYS} days after 'from'."},
        )
    return Period(start, end)
