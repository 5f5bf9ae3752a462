"""Per-model request parameters, in one table.

chatbot-ui sent max_tokens=4096 to the vision-capable models (their default output was tiny) and
null to everything else; null is never sent here. Reasoning models reject `max_tokens` and any
temperature but the default, so they get `max_completion_tokens` and no temperature.
"""

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelRule:
    pattern: re.Pattern[str]
    token_field: str = "max_tokens"
    default_max_tokens: int | None = None
    accepts_temperature: bool = True


# First match wins; a model no rule matches gets DEFAULT_RULE.
RULES: tuple[ModelRule, ...] = (
    ModelRule(re.compile(r"gpt-4o|gpt-4-vision-preview"), default_max_tokens=4096),
    # OpenAI advises reserving ~25k tokens for reasoning plus output when limiting reasoning models.
    ModelRule(
        re.compile(r"(o1|o3|o4-mini|gpt-5)([-.].*)?"),
        token_field="max_completion_tokens",
        default_max_tokens=25_000,
        accepts_temperature=False,
    ),
)
DEFAULT_RULE = ModelRule(re.compile(""))


def rule_for(model: str) -> ModelRule:
    return next((rule for rule in RULES if rule.pattern.fullmatch(model)), DEFAULT_RULE)


def apply_model_rules(params: dict[str, Any]) -> dict[str, Any]:
    """Fix up `params` (an upstream request body) in place for its model and return it.

    A caller's own limit (max_tokens or max_completion_tokens) is kept but moved to the field the
    model accepts; otherwise the table's default is used, if any. null limits are dropped.
    """
    rule = rule_for(params["model"])
    limit = params.pop("max_completion_tokens", None)
    legacy = params.pop("max_tokens", None)
    limit = limit if limit is not None else legacy
    if limit is None:
        limit = rule.default_max_tokens
    if limit is not None:
        params[rule.token_field] = limit
    if not rule.accepts_temperature:
        params.pop("temperature", None)
    return params
