"""What an upstream call is made with: one user's OpenAI key and organization."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OpenAICredentials:
    api_key: str
    organization: str | None

    def __repr__(self) -> str:  # never print the key, even in a traceback's locals
        return f"OpenAICredentials(api_key='***', organization={self.organization!r})"
