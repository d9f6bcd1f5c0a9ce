"""The request bodies of the OpenAI-compatible routes, validated as OpenAI validates them: what a client of
OpenAI's API sends is accepted (fields this server does not use are ignored), what OpenAI would refuse is a
422 naming the field."""

from __future__ import annotations

import secrets
from typing import Annotated, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from memorylab.models.protocol import GenerationParams
from memorylab.serve.bodies import AGENT_ID, MAX_TEXT, Message, needs_user_message

SAMPLING_EPS = 1e-5
MAX_TOP_LOGPROBS = 20  # OpenAI's bound for chat; vLLM's default for both routes
MAX_STOPS = 4  # OpenAI's bound on stop sequences
MAX_STOP_CHARS = 256  # a stop sequence is a few tokens; each is searched for in every decoded token's text

# Bounded before any tokenization or decoding work: a hostile request cannot make every decoded token search
# thousands of strings.
Stop = Annotated[str, Field(max_length=MAX_STOP_CHARS)]


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = Field(False, description="a last chunk with the usage (and no choices)")


class _OpenAIBody(BaseModel):
    # OpenAI clients send fields this server does not use (presence_penalty, logit_bias, ...): accept and
    # ignore them, as other OpenAI-compatible servers do, rather than break the client.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., max_length=256)
    max_tokens: Optional[int] = Field(None, ge=1, le=1024)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: Union[Stop, Annotated[list[Stop], Field(max_length=MAX_STOPS)], None] = Field(
        None, description=f"up to {MAX_STOPS} sequences of at most {MAX_STOP_CHARS} characters; the answer ends "
                          "before the first one it produces")
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**64 - 1, description="what torch.manual_seed accepts")
    n: int = Field(1, ge=1, le=1, description="one choice per request")
    stream: bool = Field(False, description="the answer as server-sent events (chunks), then `data: [DONE]`")
    stream_options: Optional[StreamOptions] = None

    @model_validator(mode="after")
    def _stream_options_need_stream(self) -> "_OpenAIBody":
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options is only allowed when stream is true")
        return self

    def new_tokens(self, default: int) -> int:
        return self.max_tokens or default

    def params(self, default_tokens: int) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        # The decoding loop samples in float32: logits / a temperature near 0 overflow to inf (NaN
        # probabilities), and a top_p below float32's resolution keeps no token at all; neither can sample.
        # Near-zero temperatures are greedy (vLLM's convention, < 1e-5); top_p is floored at 1e-6, which
        # keeps the top token only, as any smaller top_p would.
        temperature = self.temperature if self.temperature >= SAMPLING_EPS else 0.0
        # No seed means a fresh draw, as OpenAI's API has it: the decoding loop reads None as seed 0, which
        # would give every unseeded request the same "random" completion. A given seed repeats its sample.
        seed = self.seed if self.seed is not None or temperature == 0 else secrets.randbits(63)
        return GenerationParams(max_new_tokens=self.new_tokens(default_tokens), temperature=temperature,
                                top_p=max(self.top_p, 1e-6), seed=seed, stop=tuple(s for s in stop if s))

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


Prompt = Annotated[str, Field(max_length=MAX_TEXT)]


class CompletionRequest(_OpenAIBody):
    # The bounds sit on each member: a `max_length` on the Union itself would also cap a single string
    # prompt at 64 characters.
    prompt: Union[Prompt, Annotated[list[Prompt], Field(min_length=1, max_length=64)]]
    logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS,
                                    description="the log-probability of each token and of its `logprobs` likeliest "
                                                "alternatives")
    echo: bool = Field(False, description="not supported: the prompt is not repeated (a 422 when true)")

    @model_validator(mode="after")
    def _no_echo(self) -> "CompletionRequest":
        if self.echo:
            raise ValueError("echo is not supported: the completion holds the generated text only")
        return self

    @property
    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)

    @property
    def alternatives(self) -> Optional[int]:
        return self.logprobs


class ChatCompletionRequest(_OpenAIBody):
    messages: list[Message] = Field(..., min_length=1, max_length=200)
    agent_id: Optional[str] = Field(None, pattern=AGENT_ID, description="answer as this agent, with its memory")
    # The newer name of max_tokens (OpenAI deprecated max_tokens for chat); either is read.
    max_completion_tokens: Optional[int] = Field(None, ge=1, le=1024)
    logprobs: bool = Field(False, description="the log-probability of each generated token")
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_TOP_LOGPROBS,
                                        description="with logprobs: the likeliest alternatives of each token")

    @model_validator(mode="after")
    def _agent_has_question(self) -> "ChatCompletionRequest":
        if self.agent_id is not None:
            needs_user_message(self.messages)
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs: true")
        return self

    def new_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    @property
    def alternatives(self) -> Optional[int]:
        return (self.top_logprobs or 0) if self.logprobs else None


def chat_prompt(messages: list[dict]) -> str:
    """Chat turns as the plain text the tiny models read: `role: content` lines, then `assistant:`."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
