"""{% api_tokens_section as api_tokens %}: the data of the API tokens section (_api_tokens.html).

The settings page's view knows nothing of tokens; the section brings its own data (one query), so
the page includes it with one line. The token pages (token_pages.py) pass theirs as `api_tokens`.
"""

from typing import Any

from django import template

from profiles.token_pages import section_context

register = template.Library()


@register.simple_tag(takes_context=True)
def api_tokens_section(context: template.Context) -> dict[str, Any]:
    given: dict[str, Any] | None = context.get("api_tokens")
    return given if given is not None else section_context(context["request"])
