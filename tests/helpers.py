"""Small helpers shared by the API tests."""

import json
from typing import Any

from django.test import AsyncClient

CHAT_URL = "/api/chat/openai"


def chat_body(model: str = "gpt-4o-mini", temperature: float | None = 0.5, **extra: Any) -> dict[str, Any]:
    """The body chatbot-ui's browser sends (it reads only model and temperature from chatSettings)."""
    settings: dict[str, Any] = {
        "model": model,
        "prompt": "You are a friendly, helpful AI assistant.",
        "contextLength": 4096,
        "includeProfileContext": True,
        "includeWorkspaceInstructions": True,
        "embeddingsProvider": "openai",
    }
    if temperature is not None:
        settings["temperature"] = temperature
    body = {
        "chatSettings": settings,
        "messages": [
            {"role": "system", "content": "Today is Saturday."},
            {"role": "user", "content": "Say hello"},
        ],
    }
    body.update(extra)
    return body


async def post_chat(
    client: AsyncClient,
    body: Any,
    *,
    token: str | None = None,
    scheme: str = "Token",
    raw: bytes | None = None,
    **headers: str,
):
    """POST to the chat endpoint the way the browser does (no Content-Type); returns (response, body)."""
    if token is not None:
        headers["Authorization"] = f"{scheme} {token}"
    data = raw if raw is not None else json.dumps(body).encode()
    response = await client.generic("POST", CHAT_URL, data, content_type="", headers=headers)
    if response.streaming:
        content = b"".join([part async for part in response.streaming_content])
    else:
        content = response.content
    return response, content


def json_of(content: bytes) -> dict[str, Any]:
    return json.loads(content)
