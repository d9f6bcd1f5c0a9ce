"""The Ingress deployment: the FastAPI app (routes, auth, limits, error mapping) and the retriever (embedder
+ LanceDB store, serve/retriever.py) in one replica, the only writer; the MemoryAgent (decisions, reranking,
answers) and the Generator are deployments it calls. A plain search never leaves this replica."""

from __future__ import annotations

import json
from typing import Any, Optional

from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from ray import serve

from memorylab.serve.api import (
    AGENT_ID, AddMemoriesRequest, AddMemoriesResponse, ChatRequest, ChatResponse, DeletedResponse,
    HistoryItem, HistoryResponse, Memory, MemoryList, SearchRequest, SearchResponse, UpdateMemoryRequest,
)
from memorylab.serve.auth import KeyRing
from memorylab.serve import limits
from memorylab.serve.limits import BodyLimit
from memorylab.serve import orchestration
from memorylab.serve.retriever import Refusal, Retriever
from memorylab.serve.openai_routes import openai_router

fastapi_app = FastAPI(
    title="memorylab memory agents",
    description="Tenant-scoped agent memory (ADD/UPDATE/DELETE/NOOP, hybrid retrieval, reranking, adaptive "
                "retrieval) and OpenAI-compatible completions. Every route but /healthz needs "
                "`Authorization: Bearer <key>`.",
    version="1",
)

AgentId = Path(..., pattern=AGENT_ID, description="the agent's id; it belongs to the tenant that first wrote to it")
MemoryId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$")


# The Ingress instance of this replica (one per process). Serve builds its own app from fastapi_app's routes,
# so request.app.state is not where __init__ could put it; module-level functions read it from here.
_REPLICA: dict[str, "Ingress"] = {}


def _ingress(request: Request) -> "Ingress":
    return _REPLICA["ingress"]


async def tenant_of(request: Request, authorization: Optional[str] = Header(None)) -> str:
    tenant = _ingress(request).keys.tenant_for(authorization)
    if tenant is None:
        raise Unauthorized()
    return tenant


class Unauthorized(Exception):
    pass


@fastapi_app.exception_handler(Unauthorized)
async def _unauthorized(request: Request, exc: Unauthorized) -> JSONResponse:
    return JSONResponse({"detail": "missing or invalid API key (Authorization: Bearer <key>)"}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer"})


@fastapi_app.exception_handler(RequestValidationError)
async def _invalid_request(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422, except that it cannot fail: the errors echo the input, and an input holding a lone
    surrogate ("\\ud800" in JSON, which pydantic refuses) cannot be encoded as UTF-8; those replies are
    written with ASCII escapes instead of becoming a 500. NaN and Infinity (which Python's JSON parser
    accepts, and metadata refuses) have no JSON spelling at all: the inputs holding them are left out."""
    content = {"detail": jsonable_encoder(exc.errors())}
    try:
        return JSONResponse(content, status_code=422)
    except ValueError:  # UnicodeEncodeError is one
        try:
            text = json.dumps(content, ensure_ascii=True, allow_nan=False)
        except ValueError:
            text = json.dumps({"detail": [{k: v for k, v in e.items() if k != "input"} for e in content["detail"]]},
                              ensure_ascii=True)
        return Response(text, status_code=422, media_type="application/json")


def accepted(result: Any) -> Any:
    """A deployment's reply, or the HTTP error its Refusal stands for."""
    if isinstance(result, Refusal):
        raise HTTPException(status_code=result.status, detail=result.detail)
    return result


@fastapi_app.get("/healthz", tags=["ops"])
async def healthz(request: Request) -> Any:
    # Liveness only: it needs no key, so it tells nothing about any tenant (it used to count every memory).
    return {"status": "ok"}


@fastapi_app.post("/v1/agents/{agent_id}/memories", response_model=AddMemoriesResponse, tags=["memories"])
async def add_memories(body: AddMemoriesRequest, request: Request, agent_id: str = AgentId,
                       tenant: str = Depends(tenant_of)) -> Any:
    messages = [m.model_dump(mode="json") for m in body.messages]
    results = accepted(await _ingress(request).retriever.add_messages(tenant, agent_id, messages, body.infer,
                                                                body.metadata or None))
    return {"results": results}


@fastapi_app.get("/v1/agents/{agent_id}/memories", response_model=MemoryList, tags=["memories"])
async def list_memories(request: Request, agent_id: str = AgentId, limit: int = Query(100, ge=1, le=1000),
                        cursor: Optional[str] = Query(None, max_length=256), tenant: str = Depends(tenant_of)) -> Any:
    records, next_cursor = accepted(_ingress(request).retriever.list(tenant, agent_id, limit, cursor))
    return {"results": [Memory.of(r) for r in records], "next_cursor": next_cursor}


@fastapi_app.get("/v1/agents/{agent_id}/memories/{memory_id}", response_model=Memory, tags=["memories"])
async def get_memory(request: Request, agent_id: str = AgentId, memory_id: str = MemoryId,
                     tenant: str = Depends(tenant_of)) -> Any:
    return Memory.of(accepted(_ingress(request).retriever.get(tenant, agent_id, memory_id)))


@fastapi_app.put("/v1/agents/{agent_id}/memories/{memory_id}", response_model=Memory, tags=["memories"])
async def update_memory(body: UpdateMemoryRequest, request: Request, agent_id: str = AgentId,
                        memory_id: str = MemoryId, tenant: str = Depends(tenant_of)) -> Any:
    record = accepted(await _ingress(request).retriever.update(tenant, agent_id, memory_id, body.memory, body.metadata))
    return Memory.of(record)


@fastapi_app.delete("/v1/agents/{agent_id}/memories/{memory_id}", response_model=DeletedResponse, tags=["memories"])
async def delete_memory(request: Request, agent_id: str = AgentId, memory_id: str = MemoryId,
                        purge: bool = Query(False, description="also erase its text and its history's texts, "
                                            "from disk too; allowed on an already deleted memory"),
                        tenant: str = Depends(tenant_of)) -> Any:
    accepted(await _ingress(request).retriever.delete(tenant, agent_id, memory_id, purge))
    return {"id": memory_id, "deleted": True, "purged": purge}


@fastapi_app.get("/v1/agents/{agent_id}/memories/{memory_id}/history", response_model=HistoryResponse,
                 tags=["memories"])
async def memory_history(request: Request, agent_id: str = AgentId, memory_id: str = MemoryId,
                         tenant: str = Depends(tenant_of)) -> Any:
    entries = accepted(_ingress(request).retriever.history(tenant, agent_id, memory_id))
    return {"results": [HistoryItem.of(e) for e in entries]}


@fastapi_app.post("/v1/agents/{agent_id}/search", response_model=SearchResponse, tags=["retrieval"])
async def search(body: SearchRequest, request: Request, agent_id: str = AgentId,
                 tenant: str = Depends(tenant_of)) -> Any:
    return accepted(await orchestration.search(_ingress(request), tenant, agent_id, body.query, body.top_k,
                                               body.filters or None, body.rerank, body.mode, body.adaptive))


@fastapi_app.post("/v1/agents/{agent_id}/chat", response_model=ChatResponse, tags=["agents"])
async def chat(body: ChatRequest, request: Request, agent_id: str = AgentId, tenant: str = Depends(tenant_of)) -> Any:
    messages = [m.model_dump(mode="json") for m in body.messages]
    return accepted(await orchestration.chat(_ingress(request), tenant, agent_id, messages, body.max_tokens))


fastapi_app.include_router(openai_router, dependencies=[Depends(tenant_of)])
fastapi_app.add_middleware(BodyLimit)


@serve.deployment(name="Ingress", max_ongoing_requests=256)
@serve.ingress(fastapi_app)
class Ingress:
    """One replica (build_app pins it): it holds the store, and the store has one writer."""

    def __init__(self, folder: str, memory: dict[str, Any], agent: Any, generator: Any, keys: dict[str, str],
                 model_name: str, max_body_bytes: int, generation: dict[str, Any], batch_size: int = 16,
                 batch_wait_ms: float = 6.0, device: str = "cpu", policy: str = "always",
                 num_threads: int = 1, generator_replicas: int = 1) -> None:
        import torch

        torch.set_num_threads(num_threads)  # the embedder's threads follow the replica's num_cpus
        self.retriever = Retriever(folder, memory, batch_size=batch_size, batch_wait_ms=batch_wait_ms,
                                   generator=generator, device=device)
        self.agent, self.generator = agent, generator
        self.generator_replicas = generator_replicas  # a request's listwise reranker needs exactly one
        self.settings = memory
        self.policy = policy
        self.keys = KeyRing(keys)
        self.model_name = model_name
        self.generation = generation
        # Through the imported module: Serve ships this class by value (cloudpickle), so a bare `_REPLICA`
        # here would be a copy of the module's globals, not the dict the route functions read.
        import memorylab.serve.ingress as this_module

        this_module._REPLICA["ingress"] = self
        limits.MAX_BODY_BYTES = max_body_bytes
