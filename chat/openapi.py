"""The async views in the OpenAPI schema (drf-spectacular only sees DRF views).

A postprocessing hook (SPECTACULAR_SETTINGS) adds /api/chat/openai and the OpenAI-compatible /v1
endpoints by hand. The /v1 bodies are OpenAI's own: described loosely here, with a pointer to
OpenAI's API reference, rather than copied and left to go stale.
"""

from typing import Any

OPENAI_REFERENCE = "https://platform.openai.com/docs/api-reference"
SECURITY: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"tokenAuth": []}, {"cookieAuth": []}]

ERROR = {"$ref": "#/components/schemas/Error"}
OPENAI_ERROR = {"$ref": "#/components/schemas/OpenAIError"}

SCHEMAS: dict[str, Any] = {
    "OpenAIError": {
        "type": "object",
        "description": "OpenAI's error shape; `code` is one of this server's codes (see the README's table).",
        "properties": {
            "error": {
                "type": "object",
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string", "example": "invalid_request_error"},
                    "param": {"type": "string", "nullable": True},
                    "code": {"type": "string", "example": "openai_api_key_missing"},
                    "settings_url": {
                        "type": "string",
                        "format": "uri",
                        "description": "The page where the user sets their OpenAI key.",
                    },
                },
                "required": ["message", "type", "param", "code", "settings_url"],
            }
        },
        "required": ["error"],
    },
    "ChatCompletionRequest": {
        "type": "object",
        "description": f"OpenAI's chat completion request ({OPENAI_REFERENCE}/chat/create), "
        "forwarded as it is, except: the caller's stored key and organization are used (api_key, "
        "organization, project, base_url and the like in the body are dropped), and the model rules apply "
        "(max_tokens becomes max_completion_tokens and temperature is dropped for reasoning models; "
        "gpt-4o gets max_tokens 4096 unless a limit is given).",
        "properties": {
            "model": {"type": "string", "example": "gpt-4o-mini"},
            "messages": {
                "type": "array",
                "items": {"type": "object"},
                "example": [{"role": "user", "content": "Say hello"}],
            },
            "stream": {"type": "boolean", "default": False},
            "stream_options": {"type": "object", "properties": {"include_usage": {"type": "boolean"}}},
        },
        "required": ["model", "messages"],
        "additionalProperties": True,
    },
}

PATHS: dict[str, Any] = {
    "/v1/chat/completions": {
        "post": {
            "operationId": "v1_chat_completions",
            "tags": ["OpenAI-compatible"],
            "summary": "Chat completion with your stored OpenAI key (official SDKs: base_url http://host/v1)",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ChatCompletionRequest"}}
                },
            },
            "responses": {
                "200": {
                    "description": "stream false: OpenAI's chat.completion JSON, byte for byte. stream true: "
                    "OpenAI's Server-Sent Events (`data: {chunk}` ... `data: [DONE]`), relayed as they "
                    'arrive; if the upstream fails mid-stream, a last `data: {"error": {...}}` event ends '
                    "it.",
                    "content": {
                        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                **{
                    status: {"description": text, "content": {"application/json": {"schema": OPENAI_ERROR}}}
                    for status, text in {
                        "400": "Invalid body, no or unusable stored key, or the upstream refused "
                        "the request.",
                        "401": "No, unknown or revoked API token (code invalid_api_key).",
                        "429": "OpenAI rate limit (Retry-After passed on) or quota exhausted.",
                        "502": "OpenAI unreachable or failed.",
                        "504": "OpenAI did not answer in time.",
                    }.items()
                },
            },
            "security": SECURITY,
        }
    },
    "/v1/models": {
        "get": {
            "operationId": "v1_models",
            "tags": ["OpenAI-compatible"],
            "summary": "The models your stored OpenAI key can use (OpenAI's list, passed through)",
            "responses": {
                "200": {
                    "description": f"OpenAI's model list ({OPENAI_REFERENCE}/models/list).",
                    "content": {
                        "application/json": {"schema": {"type": "object", "additionalProperties": True}}
                    },
                },
                "400": {
                    "description": "No or unusable stored key.",
                    "content": {"application/json": {"schema": OPENAI_ERROR}},
                },
                "401": {
                    "description": "No, unknown or revoked API token.",
                    "content": {"application/json": {"schema": OPENAI_ERROR}},
                },
            },
            "security": SECURITY,
        }
    },
    "/api/chat/openai": {
        "post": {
            "operationId": "chat_openai",
            "tags": ["chat"],
            "summary": "chatbot-ui's chat route: the answer as plain text, streamed",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "chatSettings": {
                                    "type": "object",
                                    "properties": {
                                        "model": {"type": "string", "example": "gpt-4o-mini"},
                                        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                                    },
                                    "required": ["model"],
                                },
                                "messages": {
                                    "type": "array",
                                    "items": {"type": "object"},
                                    "example": [{"role": "user", "content": "Say hello"}],
                                },
                            },
                            "required": ["chatSettings", "messages"],
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "The content deltas as they arrive (text/plain, not SSE).",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                **{
                    status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                    for status, text in {
                        "400": "Invalid body, or a problem with the stored key or the request upstream.",
                        "401": "Not authenticated.",
                        "429": "OpenAI rate limit or quota.",
                        "502": "OpenAI unreachable or failed.",
                    }.items()
                },
            },
            "security": SECURITY,
        }
    },
}


# --- Saved conversations: the answer, streamed and saved (chat/conversation_stream.py) ---------------

_MESSAGE = {"$ref": "#/components/schemas/BranchMessage"}
_UUID_PARAMETER = {"in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
PATHS["/api/conversations/{conversation_id}/messages/"] = {
    "post": {
        "operationId": "conversation_message",
        "tags": ["conversations"],
        "summary": "Ask (or answer a question again) in a conversation: the answer as Server-Sent "
        "Events, saved as it streams",
        "parameters": [{"name": "conversation_id", **_UUID_PARAMETER}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "content": {
                                "type": "string",
                                "description": "The question. Left out: a new answer to parent_id, which "
                                "must be a question (regenerate).",
                            },
                            "model": {
                                "type": "string",
                                "example": "gpt-4o-mini",
                                "description": "Default: the conversation's (the last one used).",
                            },
                            "temperature": {"type": "number", "minimum": 0, "maximum": 2},
                            "parent_id": {
                                "type": "string",
                                "format": "uuid",
                                "nullable": True,
                                "description": "The message the question follows (default: the current "
                                "leaf; null: a new first question, e.g. the first one edited). Regenerating: "
                                "the question to answer again (default: the current branch's last one).",
                            },
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "Server-Sent Events, each an `id:` line (1, 2, ...) and one `data:` line "
                "holding a JSON object with a `type`: `start` (`conversation` {id, title}, `user_message` "
                "(null when regenerating), `assistant_message`, status streaming: both already saved), "
                "`delta` (`text`), then `done` (`message`: the saved answer, status complete or stopped) or "
                "`error` (`code`, `message`, `settings_url`, `assistant_message`: the saved answer, status "
                "interrupted or error, with the text that arrived).",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
            **{
                status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                for status, text in {
                    "400": "Invalid body, a full conversation, a problem with the stored key or the request "
                    "upstream (unknown model...): nothing is saved.",
                    "401": "Not authenticated.",
                    "403": "A session caller without the CSRF token.",
                    "404": "Not one of your conversations, or no such parent_id in it.",
                    "429": "Too many answers streaming at once, or OpenAI's rate limit or quota.",
                    "502": "OpenAI unreachable or failed.",
                    "504": "OpenAI did not answer in time.",
                }.items()
            },
        },
        "security": SECURITY,
    }
}
PATHS["/api/conversations/{conversation_id}/messages/{message_id}/stop/"] = {
    "post": {
        "operationId": "conversation_message_stop",
        "tags": ["conversations"],
        "summary": "Stop an answer as it streams, from any tab, device or worker: the upstream request "
        "is cancelled, the text so far kept (status stopped)",
        "parameters": [
            {"name": "conversation_id", **_UUID_PARAMETER},
            {"name": "message_id", **_UUID_PARAMETER},
        ],
        "responses": {
            "200": {
                "description": "Stopped (or it had ended already): the saved message.",
                "content": {"application/json": {"schema": _MESSAGE}},
            },
            "202": {
                "description": "Another worker process streams it: marked stopped, it ends there within "
                "MESSAGE_FLUSH_SECONDS (the message as it is now).",
                "content": {"application/json": {"schema": _MESSAGE}},
            },
            **{
                status: {"description": text, "content": {"application/json": {"schema": ERROR}}}
                for status, text in {
                    "400": "The message is a question, not an answer.",
                    "401": "Not authenticated.",
                    "404": "Not one of your conversations or messages.",
                }.items()
            },
        },
        "security": SECURITY,
    }
}


def add_async_views(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    result.setdefault("paths", {}).update(PATHS)
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(SCHEMAS)  # "Error" (the one JSON shape) comes from profiles.serializers.ErrorSerializer
    return result
