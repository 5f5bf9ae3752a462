"""The usage page (/usage/): the last 30 days as charts and tables, this month against the budget;
its CSV export (/usage/export.csv); the user's own budget (POST /usage/budget/)."""

import csv
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from core.errors import ApiError, error_response
from core.http import AuthenticatedHttpRequest

from .budgets import budget_for, budget_set_user_limit
from .chart import legend, series_of, stacked_chart, tokens_label, usd_label
from .forms import BudgetForm
from .params import period_from
from .selectors import (
    TOKEN_FIELDS,
    Period,
    last_days,
    month_spend,
    month_start,
    records_in,
    usage_by_day_and_model,
    usage_totals,
)


@login_required
def usage_page(request: AuthenticatedHttpRequest) -> HttpResponse:
    budget = budget_for(user=request.user)
    form = BudgetForm(initial={"monthly_budget": budget.user_limit if budget is not None else None})
    return _render_page(request, form)


@require_POST
@login_required
def budget_save(request: AuthenticatedHttpRequest) -> HttpResponse:
    form = BudgetForm(request.POST)
    if not form.is_valid():
        return _render_page(request, form, status=400)
    limit = form.cleaned_data["monthly_budget"]
    budget_set_user_limit(user=request.user, limit=limit)
    if limit is None:
        messages.success(request, "Your monthly budget is removed.")
    else:
        messages.success(request, f"Your monthly budget is now ${limit:,.2f}.")
    return redirect("usage")


def _render_page(request: AuthenticatedHttpRequest, form: BudgetForm, status: int = 200) -> HttpResponse:
    context = usage_page_context(user_id=request.user.pk, period=last_days())
    budget = budget_for(user=request.user)
    context.update(
        form=form,
        budget=budget,
        month_spent=month_spend(user_id=request.user.pk, since=month_start()),
        month_start=month_start(),
    )
    return render(request, "usage/usage.html", context, status=status)


def usage_page_context(*, user_id: int, period: Period) -> dict[str, Any]:
    """The figures of the usage page: tables per model and per day, the two charts, the totals."""
    by_model = usage_totals(user_id=user_id, period=period, group_by="model")
    daily = usage_by_day_and_model(user_id=user_id, period=period)
    series = series_of({row["key"]: row["prompt_tokens"] + row["completion_tokens"] for row in by_model})
    for row in by_model:
        row["series"] = series[row["key"]]
    totals: dict[str, Any] = {name: sum(row[name] for row in by_model) for name in (*TOKEN_FIELDS, "calls")}
    totals["estimated_calls"] = sum(row["estimated_calls"] for row in by_model)
    costs = [row["cost"] for row in by_model if row["cost"] is not None]
    totals["cost"] = sum(costs, Decimal(0)) if costs else None
    totals["priced_calls"] = sum(row["priced_calls"] for row in by_model)
    totals["tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
    estimated_share = round(100 * totals["estimated_calls"] / totals["calls"]) if totals["calls"] else 0
    days = period.days
    span = f"{period.first:%d %b} to {period.last:%d %b %Y}"
    tokens_chart = stacked_chart(
        chart_id="chart-tokens",
        title=f"Tokens per day, {span}",
        description=_chart_description(daily, "tokens", tokens_label, "tokens"),
        days=days,
        rows=daily,
        value="tokens",
        series=series,
        label=tokens_label,
        unit="tokens",
    )
    cost_chart = stacked_chart(
        chart_id="chart-cost",
        title=f"Cost per day (USD), {span}",
        description=_chart_description(daily, "cost", usd_label, ""),
        days=days,
        rows=daily,
        value="cost",
        series=series,
        label=usd_label,
        unit="",
    )
    for row in daily:
        row["series"] = series[row["model"]]
    return {
        "period": period,
        "by_model": by_model,
        "daily": daily,
        "totals": totals,
        "estimated_share": estimated_share,
        "legend": legend(series),
        "charts": [tokens_chart, cost_chart],
    }


def _chart_description(daily: list[dict[str, Any]], value: str, label: Any, unit: str) -> str:
    per_day: dict[Any, float] = {}
    for row in daily:
        per_day[row["day"]] = per_day.get(row["day"], 0.0) + float(row[value] or 0)
    if not any(per_day.values()):
        return "No calls in this period." if value == "tokens" else "No priced calls in this period."
    busiest = max(per_day, key=lambda day: per_day[day])
    total = sum(per_day.values())
    return (
        f"Bars per day, stacked by model. {label(total)} {unit} in all; the busiest day was "
        f"{busiest:%d %b} with {label(per_day[busiest])} {unit}. The table of daily figures below "
        "has the same numbers."
    ).replace("  ", " ")


CSV_COLUMNS = (
    "started_at",
    "entry_point",
    "model",
    "outcome",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "estimated",
    "cost_usd",
    "key_source",
    "api_token",
    "time_to_first_token_s",
    "duration_s",
    "message_id",
)


def _cell(value: Any) -> Any:
    # A text cell starting with = + - @ would be a formula in a spreadsheet (a model name is whatever
    # a /v1 caller sent): quoted, as OWASP advises for CSV exports.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@login_required
def usage_export(request: AuthenticatedHttpRequest) -> HttpResponse:
    """The user's calls in the period (?from=&to=, default the last 30 days), one row each."""
    try:
        period = period_from(request.GET)
    except ApiError as error:
        return error_response(request, error)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"usage-{period.first:%Y-%m-%d}-to-{period.last:%Y-%m-%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    records = records_in(user_id=request.user.pk, period=period).select_related("api_token")
    for record in records.iterator(chunk_size=1000):
        writer.writerow(
            _cell(value)
            for value in (
                record.started_at.isoformat(),
                record.entry_point,
                record.model,
                record.outcome,
                record.prompt_tokens,
                record.completion_tokens,
                record.cached_tokens,
                record.reasoning_tokens,
                "yes" if record.estimated else "no",
                "" if record.cost is None else format(record.cost.normalize(), "f"),
                record.key_source,
                record.api_token.name if record.api_token is not None else "",
                "" if record.time_to_first_token is None else f"{record.time_to_first_token:.3f}",
                "" if record.duration is None else f"{record.duration:.3f}",
                record.message_id or "",
            )
        )
    return response
