"""OpenAI-compatible routes (/v1/models, /v1/completions, /v1/chat/completions), so the `openai` client and
tools built on it talk to the generator unchanged. A chat completion that names an `agent_id` (the client's
`extra_body`) is answered by that agent, with its memory; without one it is the plain generator."""

from __future__ import annotations

import time
import uuid
from typing import Any, Optional, Union

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from memorylab.models.protocol import GenerationParams
from memorylab.serve.api import AGENT_ID, MAX_TEXT, Message

openai_router = APIRouter(prefix="/v1", tags=["openai"])


def _ingress(request: Request) -> Any:
    from memorylab.serve.ingress import _ingress as current

    return current(request)


class _OpenAIBody(BaseModel):
    # OpenAI clients send fields this server does not use (presence_penalty, logit_bias, ...): accept and
    # ignore them, as other OpenAI-compatible servers do, rather than break the client.
    model_config = ConfigDict(extra="ignore")

    model: str = Field(..., max_length=256)
    max_tokens: Optional[int] = Field(None, ge=1, le=1024)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    stop: Union[str, list[str], None] = None
    seed: Optional[int] = None
    n: int = Field(1, ge=1, le=1, description="one choice per request")

    def params(self, default_tokens: int) -> GenerationParams:
        stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return GenerationParams(max_new_tokens=self.max_tokens or default_tokens, temperature=self.temperature,
                                top_p=self.top_p, seed=self.seed, stop=tuple(s for s in stop if s))


class CompletionRequest(_OpenAIBody):
    prompt: Union[str, list[str]] = Field(..., max_length=64)


class ChatCompletionRequest(_OpenAIBody):
    messages: list[Message] = Field(..., min_length=1, max_length=200)
    agent_id: Optional[str] = Field(None, pattern=AGENT_ID, description="answer as this agent, with its memory")


def _check_model(request: Request, model: str) -> Optional[dict]:
    ingress = _ingress(request)
    if model != ingress.model_name:
        return {"error": {"message": f"model '{model}' does not exist; this server has '{ingress.model_name}'",
                          "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    return None


def chat_prompt(messages: list[dict]) -> str:
    """Chat turns as the plain text the tiny models read: `role: content` lines, then `assistant:`."""
    return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"


@openai_router.get("/models")
async def list_models(request: Request) -> dict:
    name = _ingress(request).model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "memorylab"}]}


@openai_router.post("/completions")
async def completions(body: CompletionRequest, request: Request) -> Any:
    from fastapi.responses import JSONResponse

    ingress = _ingress(request)
    if (error := _check_model(request, body.model)) is not None:
        return JSONResponse(error, status_code=404)
    prompts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not prompts or any(len(p) > MAX_TEXT for p in prompts):
        return JSONResponse({"detail": f"prompt: give 1 to 64 prompts of at most {MAX_TEXT} characters"},
                            status_code=422)
    texts = await ingress.generator.generate.remote(prompts, body.params(ingress.generation["max_new_tokens"]))
    return {"id": f"cmpl-{uuid.uuid4().hex}", "object": "text_completion", "created": int(time.time()),
            "model": body.model,
            "choices": [{"text": t, "index": i, "logprobs": None, "finish_reason": "length"} for i, t in enumerate(texts)],
            "usage": await _usage_remote(ingress, prompts, texts)}


@openai_router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
    from fastapi.responses import JSONResponse

    from memorylab.serve.ingress import accepted, tenant_of

    ingress = _ingress(request)
    if (error := _check_model(request, body.model)) is not None:
        return JSONResponse(error, status_code=404)
    messages = [m.model_dump(mode="json") for m in body.messages]
    prompt = chat_prompt(messages)
    extra: dict[str, Any] = {}
    if body.agent_id is not None:
        tenant = await tenant_of(request, request.headers.get("authorization"))
        reply = accepted(await ingress.agent.chat.remote(tenant, body.agent_id, messages, body.max_tokens))
        text = reply["answer"]
        extra = {"memorylab": {"used_memories": reply["used_memories"], "retrieved": reply["retrieved"]}}
    else:
        params = body.params(ingress.generation["max_new_tokens"])
        text = (await ingress.generator.generate.remote([prompt], params))[0]
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
