"""Usage in the admin: the records read-only, totals per user and model for a period (sortable), the
price table (editable), and monthly budgets (staff set theirs; a user's own shows read-only)."""

import re
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from core.errors import ApiError

from .models import Budget, Price, UsageRecord
from .params import period_from
from .selectors import last_days, usage_by_user_and_model


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    """Read-only: records are written by the app when a call ends, and never changed."""

    change_list_template = "admin/usage/usagerecord/change_list.html"
    list_display = (
        "started_at",
        "user",
        "entry_point",
        "model",
        "outcome",
        "prompt_tokens",
        "completion_tokens",
        "estimated",
        "cost",
        "key_source",
    )
    list_filter = ("entry_point", "outcome", "estimated", "key_source")
    search_fields = ("user__username", "model")
    date_hierarchy = "started_at"
    list_select_related = ("user",)
    show_full_result_count = False  # a COUNT(*) over every record on each page view: not needed

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        totals = path(
            "totals/", self.admin_site.admin_view(self.totals_view), name="usage_usagerecord_totals"
        )
        return [totals, *super().get_urls()]

    def totals_view(self, request: HttpRequest) -> HttpResponse:
        """Totals per user and model over a period (?from=&to=), sorted by a column (?o=)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        error = ""
        try:
            period = period_from(request.GET)
        except ApiError as refused:
            error, period = refused.message, last_days()
        order = request.GET.get("o", "-cost")
        if order.removeprefix("-") not in SORTABLE:
            order = "-cost"
        rows = usage_by_user_and_model(period=period, order=order)
        columns = [
            {
                "name": name,
                "label": label,
                "numeric": name not in ("user", "model"),
                "sorted": order.removeprefix("-") == name,
                "descending": order == f"-{name}",
                # A click sorts by the column, biggest first; on the sorted column it flips.
                "next": name if order == f"-{name}" else f"-{name}",
            }
            for name, label in SORTABLE.items()
        ]
        context = {
            **self.admin_site.each_context(request),
            "title": "Usage totals per user and model",
            "opts": self.model._meta,
            "period": period,
            "error": error,
            "rows": rows,
            "columns": columns,
            "order": order,
            "query_from": period.first.isoformat(),
            "query_to": period.last.isoformat(),
            "grand_total": _grand_total(rows),
        }
        return TemplateResponse(request, "admin/usage/totals.html", context)


SORTABLE = {
    "user": "User",
    "model": "Model",
    "calls": "Calls",
    "prompt_tokens": "Prompt tokens",
    "completion_tokens": "Completion tokens",
    "cached_tokens": "Cached",
    "reasoning_tokens": "Reasoning",
    "estimated_calls": "Estimated calls",
    "cost": "Cost (USD)",
}


def _grand_total(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = (
        "calls",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "estimated_calls",
    )
    total: dict[str, Any] = {name: sum(row[name] for row in rows) for name in names}
    costs = [row["cost"] for row in rows if row["cost"] is not None]
    total["cost"] = sum(costs) if costs else None
    return total


class PriceForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = [
            "model_pattern",
            "input_per_million",
            "cached_input_per_million",
            "output_per_million",
            "effective_from",
            "note",
        ]

    def clean_model_pattern(self) -> str:
        pattern: str = self.cleaned_data["model_pattern"].strip()
        try:
            re.compile(pattern)
        except re.error as error:
            raise forms.ValidationError(f"Not a regular expression: {error}.") from None
        return pattern


@admin.register(Price)
class PriceAdmin(admin.ModelAdmin):
    """List prices per million tokens. A price change is a new row from its date: the cost of calls
    already recorded stays as it was (it is stored on each record)."""

    form = PriceForm
    list_display = (
        "model_pattern",
        "effective_from",
        "input_per_million",
        "cached_input_per_million",
        "output_per_million",
        "note",
    )
    search_fields = ("model_pattern", "note")
    list_filter = ("effective_from",)
    ordering = ("model_pattern", "-effective_from")

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        return {"effective_from": datetime.now(UTC).date(), **super().get_changeform_initial_data(request)}


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    """Monthly ceilings. Staff set `staff_limit`; `user_limit` is the user's own (usage page)."""

    list_display = ("user", "staff_limit", "user_limit", "updated_at")
    fields = ("user", "staff_limit", "user_limit", "updated_at")
    readonly_fields = ("user_limit", "updated_at")
    raw_id_fields = ("user",)
    search_fields = ("user__username",)
    list_select_related = ("user",)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        # The user is chosen once, when the budget is added.
        return (*self.readonly_fields, "user") if obj is not None else self.readonly_fields
