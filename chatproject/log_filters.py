"""Logging filters for the server's own loggers."""

import logging

from upstream.relay import StreamInterrupted


class DropTruncatedStreamTracebacks(logging.Filter):
    """uvicorn logs a full traceback at ERROR for every exception an app raises. A stream cut off on
    purpose (the upstream failed mid-answer: relay.StreamInterrupted) is no server error: the relay
    has already logged it as one warning line, with the user and model."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, StreamInterrupted)


class ClientErrorsAtInfo(logging.Filter):
    """Django logs every 4xx answer at WARNING ("Bad Request: /api/chat/openai"). A missing key, a
    rate limit or a mistyped URL is the caller's ordinary mistake, answered in full in the response:
    one INFO line, so WARNING stays for what an operator should look at (5xx, upstream failures)."""

    def filter(self, record: logging.LogRecord) -> bool:
        status = getattr(record, "status_code", None)
        if record.name == "django.request" and isinstance(status, int) and 400 <= status < 500:
            record.levelno, record.levelname = logging.INFO, logging.getLevelName(logging.INFO)
        return True
