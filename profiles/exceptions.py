"""What can be wrong with a user's stored OpenAI credentials, and the API errors that say so."""

from core.errors import ApiError


class OpenAIKeyProblem(Exception):
    pass


class OpenAIKeyMissing(OpenAIKeyProblem):
    """No key stored."""


class OpenAIKeyUnreadable(OpenAIKeyProblem):
    """A key is stored but no key in the encryption ring decrypts it."""


class TeamKeyUnreadable(OpenAIKeyUnreadable):
    """The same, for the team key: only staff can fix it."""


# As every API endpoint answers them (services.profile_api_credentials); the error body links to
# the settings page, where both are fixed.
KEY_MISSING = ApiError(
    400, "openai_api_key_missing", "OpenAI API Key not found. Please set it in your profile settings."
)
KEY_UNREADABLE = ApiError(
    400,
    "openai_api_key_unreadable",
    "Your stored OpenAI API Key can no longer be read (the server's encryption key changed). "
    "Please re-enter it in your profile settings.",
)
TEAM_KEY_UNREADABLE = ApiError(
    400,
    "team_key_unreadable",
    "The team's OpenAI API Key can no longer be read (the server's encryption key changed). "
    "Ask your administrator to enter it again, or add a key of your own in your profile settings.",
)
