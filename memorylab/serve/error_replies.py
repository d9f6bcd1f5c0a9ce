"""The errors every route may answer, documented in /openapi.json so that a client (and the schema fuzz test)
knows each status's shape: `{"detail": "<sentence>"}`, except 422's list of {loc, msg, type}."""

from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel


class ErrorReply(BaseModel):
    detail: str


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class OpenAIErrorReply(BaseModel):
    """What OpenAI's API answers on an error, as its clients parse it."""

    error: OpenAIErrorBody


def _error(description: str, model: Any = ErrorReply) -> dict[str, Any]:
    return {"model": model, "description": description}


# Every route behind a key (memory and OpenAI-compatible routes alike).
ERROR_REPLIES: dict[int | str, dict[str, Any]] = {
    400: _error("a request the memory layer or the generator refuses (a filter, a cursor, a prompt too long)"),
    401: _error("missing or invalid API key"),
    404: _error("no such memory, or model"),
    413: _error("request body over serve.max_body_bytes"),
    502: _error("the generator's server failed or refused what it was asked"),
    503: _error("the generator's server is unreachable or overloaded"),
    504: _error("the generator's server did not answer within its timeout"),
}
# The OpenAI-compatible routes: OpenAI's error shape for what they decide themselves (an unknown model, a
# generator's refusal or failure), the sentence of the other routes for the key, the body limit and an agent's
# memory (extra_body agent_id).
OPENAI_ERROR_REPLIES = {status: (_error(reply["description"], Union[OpenAIErrorReply, ErrorReply])
                                 if status in (400, 404, 502, 503, 504) else reply)
                        for status, reply in ERROR_REPLIES.items()}
# What the OpenAI routes answer with `stream: true`.
EVENT_STREAM = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                      "description": "the completion; with stream: true, server-sent events ending `data: [DONE]`"}}
