"""What an upstream call is made with: a key, its organization, and where it goes."""

from dataclasses import dataclass
from typing import Literal

KeySource = Literal["own", "team"]


@dataclass(frozen=True, slots=True)
class OpenAICredentials:
    api_key: str
    organization: str | None
    # None: settings.OPENAI_BASE_URL, the operator's (trusted). Anything else was set by a user or by
    # staff for the team key, and is only ever reached through the SSRF guard (host_guard.py).
    base_url: str | None = None
    source: KeySource = "own"  # whose key: the user's own, or the team key staff set up

    def __repr__(self) -> str:  # never print the key, even in a traceback's locals
        return (
            f"OpenAICredentials(api_key='***', organization={self.organization!r}, "
            f"base_url={self.base_url!r}, source={self.source!r})"
        )
