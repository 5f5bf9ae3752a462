"""Figures on the usage page: token counts with thousands separators, costs in USD."""

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def thousands(value: int | None) -> str:
    return f"{value or 0:,}"


@register.filter
def usd(value: Decimal | float | None) -> str:
    """$1,234.56; small amounts keep their significant digits ($0.0042) rather than showing $0.00."""
    if value is None:
        return ""
    amount = Decimal(value)
    if amount == 0:
        return "$0.00"
    if abs(amount) < Decimal("0.01"):
        return f"${amount:.6f}".rstrip("0")
    return f"${amount:,.2f}"
