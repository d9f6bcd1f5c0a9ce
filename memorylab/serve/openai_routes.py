"""OpenAI-compatible routes (/v1/models, /v1/completions, /v1/chat/completions), so the `openai` client and
tools built on it talk to the generator unchanged. A chat completion that names an `agent_id` (the client's
`extra_body`) is answered by that agent, with its memory; without one it is the plain generator."""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Annotated, Any, Optional, Union

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from memorylab.models.protocol import GenerationParams
from memorylab.serve import orchestration
from memorylab.serve.bodies import AGENT_ID, MAX_TEXT, Message, needs_user_message
from memorylab.serve.deps import accepted, current_ingress, tenant_of
from memorylab.serve.refusal import remote_message

openai_router = APIRouter(prefix="/v1", tags=["openai"])
SAMPLING_EPS = 1e-5
Ingress = Depends(current_ingress)


class _OpenAIBody(BaseModel):
    # OpenAI clients send fields this server does not use (presence_penalty, logit_bias, ...): accept and
    # ignore them, as other OpenAI-compatible servers do, rather than break the client.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., max_length=256)
    max_tokens: Optional[int] = Field(None, ge=1, le=1024)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = Field(None, ge=-(2**63), le=2**64 - 1, description="what torch.manual_seed accepts")
    n: int = Field(1, ge=1, le=1, description="one choice per request")

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
        return GenerationParams(max_new_tokens=self.max_tokens or default_tokens, temperature=temperature,
                                top_p=max(self.top_p, 1e-6), seed=seed, stop=tuple(s for s in stop if s))


Prompt = Annotated[str, Field(max_length=MAX_TEXT)]


class CompletionRequest(_OpenAIBody):
    # The bounds sit on each member: a `max_length` on the Union itself would also cap a single string
    # prompt at 64 characters.
    prompt: Union[Prompt, Annotated[list[Prompt], Field(min_length=1, max_length=64)]]


class ChatCompletionRequest(_OpenAIBody):
    messages: list[Message] = Field(..., min_length=1, max_length=200)
    agent_id: Optional[str] = Field(None, pattern=AGENT_ID, description="answer as this agent, with its memory")

    @model_validator(mode="after")
    def _agent_has_question(self) -> "ChatCompletionRequest":
        if self.agent_id is not None:
            needs_user_message(self.messages)
        return self


def _check_model(ingress: Any, model: str) -> Optional[dict]:
    served = ingress.config.model_name
    if model != served:
        return {"error": {"message": f"model '{model}' does not exist; this server has '{served}'",
                          "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    return None


def _invalid(message: str, param: Optional[str] = None, code: Optional[str] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param,
                                   "code": code}}, status_code=400)


async def _generate(ingress: Any, prompts: list[str], params: GenerationParams) -> Union[list[str], JSONResponse]:
    """The generator's texts, or OpenAI's 400 when it refuses the request (a prompt plus max_tokens longer
    than the model's context is a ValueError there: the client's request, not a server error)."""
    try:
        return await ingress.generator.generate.remote(prompts, params)
    except ValueError as e:  # a RayTaskError(ValueError) is a ValueError too: prompt + max_tokens over the context
        message = remote_message(e)
        too_long = "context" in message
        return _invalid(message, param="max_tokens" if too_long else None,
                        code="context_length_exceeded" if too_long else None)


def chat_prompt(messages: list[dict]) -> str:
    """Chat turns as the plain text the tiny models read: `role: content` lines, then `assistant:`."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


@openai_router.get("/models")
async def list_models(ingress: Any = Ingress) -> dict:
    name = ingress.config.model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "memorylab"}]}


@openai_router.post("/completions")
async def completions(body: CompletionRequest, ingress: Any = Ingress) -> Any:
    if (error := _check_model(ingress, body.model)) is not None:
        return JSONResponse(error, status_code=404)
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts or any(len(p) > MAX_TEXT for p in prompts):
        return JSONResponse({"detail": f"prompt: give 1 to 64 prompts of at most {MAX_TEXT} characters"},
                            status_code=422)
    texts = await _generate(ingress, prompts, body.params(ingress.config.generation.max_new_tokens))
    if isinstance(texts, JSONResponse):
        return texts
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": body.model,
            "choices": [{"text": t, "index": i, "logprobs": None, "finish_reason": "length"} for i, t in enumerate(texts)],
            "usage": await _usage_remote(ingress, prompts, texts)}


@openai_router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, ingress: Any = Ingress,
                           authorization: Optional[str] = Header(None)) -> Any:
    if (error := _check_model(ingress, body.model)) is not None:
        return JSONResponse(error, status_code=404)
    messages = [m.model_dump(mode="json") for m in body.messages]
    prompt = chat_prompt(messages)
    extra: dict[str, Any] = {}
    if body.agent_id is not None:
        tenant = await tenant_of(authorization, ingress)
        reply = accepted(await orchestration.chat(ingress, tenant, body.agent_id, messages, body.max_tokens))
        text = reply["answer"]
        extra = {"memorylab": {"used_memories": reply["used_memories"], "retrieved": reply["retrieved"]}}
    else:
        params = body.params(ingress.config.generation.max_new_tokens)
        texts = await _generate(ingress, [prompt], params)
        if isinstance(texts, JSONResponse):
            return texts
        text = texts[0]
    return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
            "model": body.model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": await _usage_remote(ingress, [prompt], [text]), **extra}


async def _usage_remote(ingress: Any, prompts: list[str], texts: list[str]) -> dict:
    encoded = await ingress.generator.encode.remote(list(prompts) + list(texts))
    prompt_tokens = sum(len(ids) for ids in encoded[: len(prompts)])
    completion_tokens = sum(len(ids) for ids in encoded[len(prompts):])
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
