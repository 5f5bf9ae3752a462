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
