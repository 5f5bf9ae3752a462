"""The usage page's charts, drawn on the server as SVG: bars per day, stacked by model.

No script and no style attribute (the CSP allows neither): geometry is computed here and written as
SVG presentation attributes (x, y, width, height); colours come from classes in usage.css. Every bar
segment carries a <title> (shown on hover), and the page's tables carry the same figures.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

WIDTH, HEIGHT = 760, 230
LEFT, RIGHT, TOP, BOTTOM = 70, 28, 12, 30  # room for the axis labels
PALETTE = 7  # models with a colour of their own (series-0..6); the rest share "other" (series-7)
OTHER = "other models"


@dataclass(frozen=True, slots=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    series: int
    label: str


@dataclass(slots=True)
class Chart:
    """What the template draws."""

    id: str
    title: str
    description: str
    width: int = WIDTH
    height: int = HEIGHT
    segments: list[Segment] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    x_labels: list[tuple[float, str]] = field(default_factory=list)
    plot_left: int = LEFT
    plot_right: int = WIDTH - RIGHT
    baseline: float = HEIGHT - BOTTOM


def series_of(totals_by_model: dict[str, float]) -> dict[str, int]:
    """Colour index per model: the biggest PALETTE models by the figure given, the rest share one."""
    ranked = sorted(totals_by_model, key=lambda model: (-totals_by_model[model], model))
    return {model: (n if n < PALETTE else PALETTE) for n, model in enumerate(ranked)}


def legend(series: dict[str, int]) -> list[tuple[int, str]]:
    seen: dict[int, str] = {}
    for model, index in sorted(series.items(), key=lambda item: item[1]):
        seen.setdefault(index, OTHER if index == PALETTE else model)
    return sorted(seen.items())


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^n at least `value` (an axis' top)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power * (1 + 1e-9):
            return float(step * power)
    return 10.0 * power


def tokens_label(value: float) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:g}M"
    if value >= 1_000:
        return f"{value / 1_000:g}k"
    return f"{value:g}"


def usd_label(value: float | Decimal) -> str:
    value = float(value)
    if value == 0:
        return "$0"
    if value < 0.01:
        return f"${value:.4f}".rstrip("0")
    return f"${value:,.2f}"


def stacked_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    days: list[date],
    rows: list[dict[str, Any]],
    value: str,
    series: dict[str, int],
    label: Callable[[float], str],
    unit: str,
) -> Chart:
    """Bars per day of `rows` (dicts with day, model and `value`), stacked by model in series order."""
    chart = Chart(chart_id, title, description)
    per_day: dict[date, list[tuple[int, str, float]]] = {day: [] for day in days}
    for row in rows:
        amount = float(row[value] or 0)
        if amount > 0 and row["day"] in per_day:
            per_day[row["day"]].append((series[row["model"]], row["model"], amount))
    top = nice_ceiling(max((sum(a for _, _, a in stack) for stack in per_day.values()), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    band = (WIDTH - LEFT - RIGHT) / max(len(days), 1)
    bar = band * 0.7
    for n, day in enumerate(days):
        x = LEFT + n * band + (band - bar) / 2
        y = float(HEIGHT - BOTTOM)
        for index, model, amount in sorted(per_day[day]):
            height = amount / top * plot_height
            y -= height
            chart.segments.append(
                Segment(round(x, 2), round(y, 2), round(bar, 2), round(height, 2), index,
                        f"{day:%d %b}, {model}: {label(amount)} {unit}".rstrip())
            )  # fmt: skip
        if n % 5 == 0 or n == len(days) - 1:
            chart.x_labels.append((round(x + bar / 2, 2), f"{day:%d %b}"))
    for fraction in (0, 0.5, 1):
        chart.y_ticks.append((round(HEIGHT - BOTTOM - fraction * plot_height, 2), label(top * fraction)))
    return chart
