"""The OpenAI wire format of a finished completion: the response object, its `logprobs` (each route has its
own shape) and, for `stream: true`, the server-sent events a client of OpenAI's API reads.

The stream is cut from the finished completion, one chunk per generated token: every answer is decoded in one
call to the generator (a batch there, and a prompt it refuses is an HTTP error before any event is sent), so
the chunks arrive together rather than as they are decoded."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

from memorylab.models.protocol import Completion, TokenLogprob


@dataclass(frozen=True)
class Choice:
    """One answer: its text, why it ended, and its tokens with log-probabilities when the client asked."""

    text: str
    finish_reason: str
    tokens: Optional[tuple[TokenLogprob, ...]] = None

    @classmethod
    def of(cls, completion: Completion, logprobs: Optional[int]) -> "Choice":
        return cls(completion.text, completion.finish_reason, completion.tokens if logprobs is not None else None)


@dataclass
class Reply:
    """What a route answers: the choices, the usage, and any memorylab fields (an agent's used memories)."""

    kind: str  # "chat" or "text"
    model: str
    choices: list[Choice]
    usage: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: int = field(default_factory=lambda: int(time.time()))

    def _head(self, obj: str) -> dict[str, Any]:
        prefix = "chatcmpl" if self.kind == "chat" else "cmpl"
        return {"id": f"{prefix}-{self.id}", "object": obj, "created": self.created, "model": self.model}

    def body(self) -> dict[str, Any]:
        if self.kind == "chat":
            choices = [{"index": i, "message": {"role": "assistant", "content": c.text},
                        "logprobs": chat_logprobs(c.tokens), "finish_reason": c.finish_reason}
                       for i, c in enumerate(self.choices)]
            return {**self._head("chat.completion"), "choices": choices, "usage": self.usage, **self.extra}
        choices = [{"text": c.text, "index": i, "logprobs": text_logprobs(c.tokens), "finish_reason": c.finish_reason}
                   for i, c in enumerate(self.choices)]
        return {**self._head("text_completion"), "choices": choices, "usage": self.usage, **self.extra}

    def events(self, include_usage: bool) -> Iterator[str]:
        """The server-sent events of `stream: true`: the tokens of each choice as chunks, a chunk with its
        finish_reason, the usage chunk when asked (no choices), then `[DONE]`."""
        obj = "chat.completion.chunk" if self.kind == "chat" else "text_completion"
        usage = {"usage": None} if include_usage else {}
        for i, choice in enumerate(self.choices):
            if self.kind == "chat":
                yield _event({**self._head(obj), "choices": [{"index": i, "delta": {"role": "assistant", "content": ""},
                                                              "logprobs": None, "finish_reason": None}], **usage})
            for piece, token in _pieces(choice):
                yield _event({**self._head(obj), "choices": [self._delta(i, piece, token, choice)], **usage})
            last = ({"index": i, "delta": {}, "logprobs": None, "finish_reason": choice.finish_reason}
                    if self.kind == "chat" else
                    {"text": "", "index": i, "logprobs": None, "finish_reason": choice.finish_reason})
            yield _event({**self._head(obj), "choices": [last], **usage})
        if include_usage:
            yield _event({**self._head(obj), "choices": [], "usage": self.usage, **self.extra})
        yield "data: [DONE]\n\n"

    def _delta(self, index: int, piece: str, token: Optional[TokenLogprob], choice: Choice) -> dict[str, Any]:
        tokens = (token,) if token is not None and choice.tokens is not None else None
        if self.kind == "chat":
            return {"index": index, "delta": {"content": piece}, "logprobs": chat_logprobs(tokens),
                    "finish_reason": None}
        return {"text": piece, "index": index, "logprobs": text_logprobs(tokens), "finish_reason": None}


def _pieces(choice: Choice) -> Iterator[tuple[str, Optional[TokenLogprob]]]:
    """The text in token-sized pieces when the tokens spell it (they do for a plain completion), else whole."""
    tokens = choice.tokens or ()
    if tokens and "".join(t.token for t in tokens) == choice.text:
        yield from ((t.token, t) for t in tokens)
    elif choice.text:
        yield choice.text, None


def _event(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _bytes(token: str) -> list[int]:
    return list(token.encode("utf-8"))


def chat_logprobs(tokens: Optional[Sequence[TokenLogprob]]) -> Optional[dict[str, Any]]:
    """Chat's shape: one entry per token with its bytes and a list of top alternatives."""
    if tokens is None:
        return None
    return {"content": [{"token": t.token, "logprob": t.logprob, "bytes": _bytes(t.token),
                         "top_logprobs": [{"token": a, "logprob": lp, "bytes": _bytes(a)} for a, lp in t.top]}
                        for t in tokens], "refusal": None}


def text_logprobs(tokens: Optional[Sequence[TokenLogprob]]) -> Optional[dict[str, Any]]:
    """The completions route's (legacy) shape: parallel lists, alternatives as one mapping per token."""
    if tokens is None:
        return None
    offsets, at = [], 0
    for t in tokens:
        offsets.append(at)
        at += len(t.token)
    return {"tokens": [t.token for t in tokens], "token_logprobs": [t.logprob for t in tokens],
            "top_logprobs": [dict(t.top) for t in tokens], "text_offset": offsets}


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
