"""A conversation's title, generated after its first answer (CONVERSATION_AUTO_TITLE).

The first line of the first question is the title at once (answers.answer_plan); once the first
answer is saved, a small model (CONVERSATION_TITLE_MODEL) is asked for a short one, with the key the
answer used (the user's own), through the one upstream path (upstream.stream.open_stream: it takes
a stream slot like any call). It runs in the background: the answer never waits for it, and a
failure (no slot, an upstream error, an empty reply) leaves the first-line title, logged without
the key.
"""

import logging
import uuid
from typing import Any

import orjson
from django.conf import settings

from upstream.credentials import OpenAICredentials
from upstream.stream import open_stream

from .answers import title_replace
from .offloop import run_db
from .services import TITLE_MAX_LENGTH

logger = logging.getLogger(__name__)

TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below, in its language. "
    "Answer with the title alone: no quotes, no final punctuation."
)
# What the model is shown of each side: a title needs the gist, not the whole text.
EXCERPT_CHARS = 2_000
TITLE_CHARS = 80
_STRIP = " \t\"'`*#.“”‘’«»"


def title_clean(text: str) -> str:
    """The reply as a title: its first non-blank line, unquoted, whitespace collapsed, cut to fit."""
    line = next((line for line in text.splitlines() if line.strip()), "")
    line = " ".join(line.split()).strip(_STRIP)
    if line.lower().startswith("title:"):
        line = line[len("title:") :].strip(_STRIP)
    limit = min(TITLE_CHARS, TITLE_MAX_LENGTH)
    if len(line) > limit:
        line = line[: limit - 1].rstrip() + "…"
    return line


def title_request(*, question: str, answer: str) -> dict[str, Any]:
    """The upstream request body (no token limit: model_rules lives in chat/, and a title is short)."""
    return {
        "model": settings.CONVERSATION_TITLE_MODEL,
        "stream": False,
        "messages": [
            {"role": "system", "content": TITLE_PROMPT},
            {
                "role": "user",
                "content": f"Question:\n{question[:EXCERPT_CHARS]}\n\nAnswer:\n{answer[:EXCERPT_CHARS]}",
            },
        ],
    }


async def title_generate(
    *,
    user_id: int,
    credentials: OpenAICredentials,
    conversation_id: uuid.UUID,
    question: str,
    answer: str,
    replaces: str,
) -> None:
    """Ask for a title and set it, unless the title is no longer `replaces` (renamed meanwhile).
    Never raises: a title is a nicety."""
    log_context = f"(user {user_id}, conversation {conversation_id})"
    try:
        stream = await open_stream(
            user_id=user_id,
            credentials=credentials,
            params=title_request(question=question, answer=answer),
            log_context=log_context,
        )
        async with stream:
            reply = await stream.read_reply()
        content = orjson.loads(reply.content)["choices"][0]["message"]["content"]
        title = title_clean(content if isinstance(content, str) else "")
        if not title:
            return
        await run_db(title_replace, conversation_id=conversation_id, title=title, replaces=replaces)
    except Exception as exc:  # ApiError (no slot, the upstream refused), a reply not shaped as expected
        logger.info("no title generated %s: %s", log_context, getattr(exc, "code", type(exc).__name__))
