"""How the chat endpoints open an upstream call that someone pays for: one place for the budget
check, the usage figures asked for, and the usage record written when the call ends."""

from typing import Any

from django.http import HttpRequest

from profiles.auth import authenticated_token_id
from upstream.credentials import OpenAICredentials
from upstream.stream import UpstreamStream, open_stream

from .budgets import budget_check
from .recording import ask_for_usage, recorder


async def open_metered_stream(
    *,
    request: HttpRequest,
    user_id: int,
    credentials: OpenAICredentials,
    params: dict[str, Any],
    entry_point: str,
    log_context: str,
    message_id: Any = None,
) -> tuple[UpstreamStream, bool]:
    """upstream.stream.open_stream, metered: 429 budget_exceeded past the user's monthly budget
    (before anything goes upstream), the upstream asked for its usage figures, and one usage record
    for the call however it ends. `params` (model rules applied) is changed in place.

    Returns the stream and whether the caller had asked for the usage figures itself (/v1 passes
    the usage event on only then)."""
    await budget_check(request=request, user_id=user_id)
    caller_asked_for_usage = ask_for_usage(params)
    record_usage = recorder(
        user_id=user_id,
        entry_point=entry_point,
        model=params["model"],
        messages=params["messages"],
        api_token_id=authenticated_token_id(request),
        key_source=credentials.source,
        message_id=message_id,
    )
    stream = await open_stream(
        user_id=user_id,
        credentials=credentials,
        params=params,
        log_context=log_context,
        when_closed=record_usage,
    )
    return stream, caller_asked_for_usage
