"""What can be wrong with a user's stored OpenAI credentials (mapped to API errors in chat/errors.py)."""


class OpenAIKeyProblem(Exception):
    pass


class OpenAIKeyMissing(OpenAIKeyProblem):
    """No key stored."""


class OpenAIKeyUnreadable(OpenAIKeyProblem):
    """A key is stored but no key in the encryption ring decrypts it."""
