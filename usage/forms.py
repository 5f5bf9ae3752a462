"""The usage page's budget form: the monthly ceiling a user sets for themself."""

from decimal import Decimal

from django import forms

MAX_BUDGET = Decimal("1000000")


class BudgetForm(forms.Form):
    monthly_budget = forms.DecimalField(
        label="Your monthly budget (USD)",
        required=False,
        min_value=Decimal("0"),
        max_value=MAX_BUDGET,
        max_digits=10,
        decimal_places=2,
        help_text="New requests are refused once this month's calls cost this much. "
        "Empty: no budget of yours (one set by your administrator still applies; the lower wins).",
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0", "inputmode": "decimal"}),
    )
