"""OpenAI-compatible routes (/v1/models, /v1/completions, /v1/chat/completions), so the `openai` client and
tools built on it talk to the generator unchanged: log-probabilities as OpenAI returns them, `stream: true` as
server-sent events (with `stream_options.include_usage`), and `finish_reason` "length" exactly when
max_tokens cut the answer. So one memorylab agent can be another's generator (generator.source: openai).
A chat completion that names an `agent_id` (the client's `extra_body`) is answered by that agent, with its
memory; without one it is the plain generator."""

from __future__ import annotations

import asyncio
from typing import Any, Optional, Union

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse, StreamingResponse

from memorylab.errors import GeneratorUnavailable
from memorylab.models.protocol import Completion, GenerationParams
from memorylab.serve import orchestration
from memorylab.serve.deps import accepted, current_ingress, tenant_of
from memorylab.serve.error_replies import EVENT_STREAM
from memorylab.serve.openai_bodies import ChatCompletionRequest, CompletionRequest, chat_prompt
from memorylab.serve.openai_format import Choice, Reply, usage
from memorylab.serve.refusal import remote_message

openai_router = APIRouter(prefix="/v1", tags=["openai"])
Ingress = Depends(current_ingress)


def _error(status: int, message: str, kind: str, param: Optional[str] = None,
           code: Optional[str] = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}},
                        status_code=status)


def _check_model(ingress: Any, model: str) -> Optional[JSONResponse]:
    served = ingress.config.model_name
    if model != served:
        return _error(404, f"model '{model}' does not exist; this server has '{served}'", "invalid_request_error",
                      "model", "model_not_found")
    return None


async def _complete(ingress: Any, prompts: list[str], params: GenerationParams,
                    logprobs: Optional[int]) -> Union[list[Completion], JSONResponse]:
    """The generator's completions, or OpenAI's error when it refuses the request (a prompt plus max_tokens
    longer than the model's context is a ValueError there: the client's request, not a server error) or its
    server failed. Tokens are always asked for (0 alternatives at least): the stream is cut at them."""
    try:
        return await asyncio.to_thread(ingress.lm.complete, prompts, params, max(logprobs or 0, 0))
    except GeneratorUnavailable as e:
        return _error(e.status, f"generator: {e}", "server_error")
    except ValueError as e:  # a RayTaskError(ValueError) is a ValueError too: prompt + max_tokens over the context
        message = remote_message(e)
        too_long = "context" in message
        return _error(400, message, "invalid_request_error", "max_tokens" if too_long else None,
                      "context_length_exceeded" if too_long else None)


async def _usage(ingress: Any, prompts: list[str], completions: list[Completion]) -> dict[str, int]:
    counted = [c for c in completions if c.tokens is None]
    counts = iter(await asyncio.to_thread(ingress.lm.count_tokens, prompts + [c.text for c in counted]))
    prompt_tokens = sum(next(counts) for _ in prompts)
    generated = sum(len(c.tokens) if c.tokens is not None else next(counts) for c in completions)
    return usage(prompt_tokens, generated)


def _respond(reply: Reply, stream: bool, include_usage: bool) -> Any:
    if stream:
        return StreamingResponse(reply.events(include_usage), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})
    return reply.body()


@openai_router.get("/models")
async def list_models(ingress: Any = Ingress) -> dict:
    name = ingress.config.model_name
    return {"object": "list", "data": [{"id": name, "object": "model", "created": 0, "owned_by": "memorylab"}]}


@openai_router.post("/completions", responses=EVENT_STREAM)
async def completions(body: CompletionRequest, ingress: Any = Ingress) -> Any:
    if (error := _check_model(ingress, body.model)) is not None:
        return error
    prompts = body.prompts
    done = await _complete(ingress, prompts, body.params(ingress.config.generation.max_new_tokens), body.logprobs)
    if isinstance(done, JSONResponse):
        return done
    reply = Reply("text", body.model, [Choice.of(c, body.logprobs) for c in done], await _usage(ingress, prompts, done))
    return _respond(reply, body.stream, body.include_usage)


@openai_router.post("/chat/completions", responses=EVENT_STREAM)
async def chat_completions(body: ChatCompletionRequest, ingress: Any = Ingress,
                           authorization: Optional[str] = Header(None)) -> Any:
    if (error := _check_model(ingress, body.model)) is not None:
        return error
    messages = [m.model_dump(mode="json") for m in body.messages]
    prompt = chat_prompt(messages)
    if body.agent_id is not None:
        tenant = await tenant_of(authorization, ingress)
        answer = accepted(await orchestration.chat(ingress, tenant, body.agent_id, messages,
                                                   body.new_tokens(ingress.config.generation.max_new_tokens),
                                                   logprobs=body.alternatives))
        tokens = answer.get("tokens")
        choice = Choice(answer["answer"], answer["finish_reason"], tuple(tokens) if tokens is not None else None)
        # The agent's prompt (memories + question) is what the generator read: its tokens are the prompt's.
        reply = Reply("chat", body.model, [choice], usage(answer["context_tokens"], answer["answer_tokens"]),
                      {"memorylab": {"used_memories": answer["used_memories"], "retrieved": answer["retrieved"]}})
        return _respond(reply, body.stream, body.include_usage)
    done = await _complete(ingress, [prompt], body.params(ingress.config.generation.max_new_tokens),
                           body.alternatives)
    if isinstance(done, JSONResponse):
        return done
    reply = Reply("chat", body.model, [Choice.of(done[0], body.alternatives)], await _usage(ingress, [prompt], done))
    return _respond(reply, body.stream, body.include_usage)
