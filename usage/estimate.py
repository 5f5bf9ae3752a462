"""Token figures for a call the upstream sent none for (stopped, client gone, failed mid-answer).

Estimates, marked as such on the record (UsageRecord.estimated):

- prompt: OpenAI's counting recipe for chat messages (3 tokens of framing per message, 3 more to
  prime the answer) with ~4 characters per token in place of the tokenizer. Text only: images,
  audio and tool definitions are not counted, so a prompt with them is under-estimated.
- completion, answer relayed as text (/api/chat/openai, the conversation endpoint): the characters
  relayed / 4, rounded up.
- completion, SSE passed through (/v1): one token per content event, which is how OpenAI streams
  (one token per chunk). The role event is not content; a complete stream also has the finish
  event and [DONE] (not counted either).

Nothing here tokenizes: a tokenizer (tiktoken) costs megabytes of tables and milliseconds per long
prompt, for calls that are a few percent of all calls; ~4 characters per token is OpenAI's own rule
of thumb for English, within ~15% for prose, further off for code and other languages.
"""

from collections.abc import Sequence
from typing import Any

from upstream.record import COMPLETE, StreamRecord

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 3  # <|start|>role ... <|end|>
TOKENS_TO_PRIME_ANSWER = 3  # <|start|>assistant<|message|>


def _tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)  # rounded up


def _text_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: text counts, images and audio do not
        return sum(
            len(part["text"])
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return 0


def prompt_tokens_estimate(messages: Sequence[Any]) -> int:
    """The prompt's tokens, estimated from its messages' text (see the module docstring)."""
    total = TOKENS_TO_PRIME_ANSWER
    for message in messages:
        if isinstance(message, dict):
            total += TOKENS_PER_MESSAGE + _tokens(_text_chars(message.get("content")))
    return total


def completion_tokens_estimate(record: StreamRecord) -> int:
    """The answer's tokens, estimated from what was relayed of it."""
    if record.content_chars:  # the text path
        return _tokens(record.content_chars)
    if record.content_events:  # the passthrough path: role event (+ finish event and [DONE] if complete)
        framing = 3 if record.outcome == COMPLETE else 1
        return max(0, record.content_events - framing)
    return 0
