"""The price table (models.Price) and what a call cost by it.

The table is small (tens of rows) and read once per recorded call, off the streaming path: it is kept
in memory for PRICE_CACHE_SECONDS, and dropped at once in the process where a price is saved (the
admin); other worker processes see an edit within that time.
"""

import re
import time
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models.signals import post_delete, post_save

from .models import Price

PRICE_CACHE_SECONDS = 60.0
PER = Decimal(1_000_000)
COST_PLACES = Decimal("0.0000000001")  # UsageRecord.cost's 10 decimal places


@dataclass(frozen=True, slots=True)
class _Entry:
    pattern: re.Pattern[str] | None  # None: not a valid expression (matches nothing)
    pattern_length: int
    effective_from: date
    input: Decimal
    cached_input: Decimal
    output: Decimal


_table: list[_Entry] | None = None
_loaded_at = 0.0


def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:  # the admin form refuses these; a row written otherwise prices nothing
        return None


def _load() -> list[_Entry]:
    global _table, _loaded_at
    if _table is None or time.monotonic() - _loaded_at > PRICE_CACHE_SECONDS:
        _table = [
            _Entry(
                _compile(price.model_pattern),
                len(price.model_pattern),
                price.effective_from,
                price.input_per_million,
                price.input_per_million
                if price.cached_input_per_million is None
                else price.cached_input_per_million,
                price.output_per_million,
            )
            for price in Price.objects.all()
        ]
        _loaded_at = time.monotonic()
    return _table


def prices_forget(**_: object) -> None:
    """Drop the table kept in memory (a price was saved or deleted)."""
    global _table
    _table = None


post_save.connect(prices_forget, sender=Price, dispatch_uid="usage.prices_forget.save")
post_delete.connect(prices_forget, sender=Price, dispatch_uid="usage.prices_forget.delete")


def price_for(*, model: str, day: date) -> _Entry | None:
    """The price of `model` on `day` (see models.Price), or None. Sync: it may read the table."""
    best: _Entry | None = None
    for entry in _load():
        if entry.effective_from > day or entry.pattern is None or not entry.pattern.fullmatch(model):
            continue
        if best is None or (entry.effective_from, entry.pattern_length) > (
            best.effective_from,
            best.pattern_length,
        ):
            best = entry
    return best


def call_cost(
    *, model: str, day: date, prompt_tokens: int, cached_tokens: int, completion_tokens: int
) -> Decimal | None:
    """USD, or None when no price applies. Cached prompt tokens at the cached price, the rest of the
    prompt at the input price, the completion (reasoning included) at the output price."""
    price = price_for(model=model, day=day)
    if price is None:
        return None
    cached = min(cached_tokens, prompt_tokens)
    total = (prompt_tokens - cached) * price.input + cached * price.cached_input
    total += completion_tokens * price.output
    return (total / PER).quantize(COST_PLACES)
