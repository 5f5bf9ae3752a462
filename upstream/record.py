"""What one upstream call did: filled in as it streams (by its owner, stream.UpstreamStream, and the
relay's transforms) and handed to whoever records it once it is closed (usage, saved answers)."""

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# How a stream ended.
COMPLETE = "complete"  # the upstream finished the answer
STOPPED = "stopped"  # stop() was called: the user asked for it
CLIENT_GONE = "client_gone"  # the client left (disconnect, or the response was abandoned)
UPSTREAM_ERROR = "upstream_error"  # the upstream failed before or during the answer


@dataclass(slots=True)
class StreamRecord:
    """What one upstream call did, filled in as it goes (by the owner and the relay's transforms)."""

    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    started: float = field(default_factory=time.monotonic)
    first_chunk: float | None = None  # monotonic: when the first body bytes arrived
    ended: float | None = None
    outcome: str = ""  # one of the four above, once it has ended
    called_upstream: bool = False  # False: refused before any request went out (the stream cap)
    usage: dict[str, Any] | None = None  # the upstream's own usage object, if it sent one
    content_chars: int = 0  # answer text relayed (the parsed path: text_deltas)
    content_events: int = 0  # SSE events relayed (the passthrough path: ~1 token each in OpenAI's streams)

    @property
    def time_to_first_chunk(self) -> float | None:
        return None if self.first_chunk is None else self.first_chunk - self.started

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started
