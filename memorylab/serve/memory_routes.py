"""The memory API: an agent's memories (add, list, get, update, delete, history), search and chat, under
/v1/agents/{agent_id}. Every route needs a tenant's key; agents are scoped to the tenant: the same agent id
under two tenants is two agents."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from memorylab.serve import orchestration
from memorylab.serve.bodies import (
    AGENT_ID,
    AddEvent,
    AddQueued,
    AddMemoriesRequest,
    AddMemoriesResponse,
    ChatRequest,
    ChatResponse,
    DeletedResponse,
    HistoryItem,
    HistoryResponse,
    Memory,
    MemoryList,
    SearchRequest,
    SearchResponse,
    UpdateMemoryRequest,
)
from memorylab.serve.error_replies import ErrorReply
from memorylab.serve.deps import accepted, current_ingress, tenant_of

memory_router = APIRouter(prefix="/v1/agents/{agent_id}")

AgentId = Path(..., pattern=AGENT_ID, description="the agent's id, within the caller's tenant")
MemoryId = Path(..., pattern=r"^[A-Za-z0-9_-]{1,64}$")
Ingress = Depends(current_ingress)
Tenant = Depends(tenant_of)


@memory_router.post("/memories", response_model=AddMemoriesResponse, tags=["memories"],
                    responses={202: {"model": AddQueued, "description": "`async: true`: queued durably; "
                                     "GET /v1/agents/{agent_id}/events/{event_id} tells when it is applied"},
                               429: {"model": ErrorReply, "description": "`async: true` and serve.max_queued_adds "
                                     "of the tenant's adds are queued already"}})
async def add_memories(body: AddMemoriesRequest, agent_id: str = AgentId, ingress: Any = Ingress,
                       tenant: str = Tenant) -> Any:
    messages = [m.model_dump(mode="json") for m in body.messages]
    if body.async_:
        queued = accepted(await ingress.retriever.queue_add(tenant, agent_id, messages, body.infer,
                                                            body.metadata or None))
        return JSONResponse(AddQueued(**queued).model_dump(), status_code=202)
    results = accepted(await ingress.retriever.add_messages(tenant, agent_id, messages, body.infer,
                                                            body.metadata or None))
    return {"results": results}


@memory_router.get("/events/{event_id}", response_model=AddEvent, tags=["memories"])
async def add_event(agent_id: str = AgentId, event_id: str = Path(..., pattern=r"^[0-9a-f]{32}$"),
                    ingress: Any = Ingress, tenant: str = Tenant) -> Any:
    """The status of an add sent with `async: true`, and its results once applied."""
    return AddEvent.of(accepted(await ingress.retriever.add_event(tenant, agent_id, event_id)))


@memory_router.get("/memories", response_model=MemoryList, tags=["memories"])
async def list_memories(agent_id: str = AgentId, limit: int = Query(100, ge=1, le=1000),
                        cursor: Optional[str] = Query(None, max_length=256), ingress: Any = Ingress,
                        tenant: str = Tenant) -> Any:
    records, next_cursor = accepted(ingress.retriever.list(tenant, agent_id, limit, cursor))
    return {"results": [Memory.of(r) for r in records], "next_cursor": next_cursor}


@memory_router.get("/memories/{memory_id}", response_model=Memory, tags=["memories"])
async def get_memory(agent_id: str = AgentId, memory_id: str = MemoryId, ingress: Any = Ingress,
                     tenant: str = Tenant) -> Any:
    return Memory.of(accepted(ingress.retriever.get(tenant, agent_id, memory_id)))


@memory_router.put("/memories/{memory_id}", response_model=Memory, tags=["memories"])
async def update_memory(body: UpdateMemoryRequest, agent_id: str = AgentId, memory_id: str = MemoryId,
                        ingress: Any = Ingress, tenant: str = Tenant) -> Any:
    return Memory.of(accepted(await ingress.retriever.update(tenant, agent_id, memory_id, body.memory,
                                                             body.metadata)))


@memory_router.delete("/memories/{memory_id}", response_model=DeletedResponse, tags=["memories"])
async def delete_memory(agent_id: str = AgentId, memory_id: str = MemoryId,
                        purge: bool = Query(False, description="also erase its text and its history's texts, "
                                            "from disk too; allowed on an already deleted memory"),
                        ingress: Any = Ingress, tenant: str = Tenant) -> Any:
    accepted(await ingress.retriever.delete(tenant, agent_id, memory_id, purge))
    return {"id": memory_id, "deleted": True, "purged": purge}


@memory_router.get("/memories/{memory_id}/history", response_model=HistoryResponse, tags=["memories"])
async def memory_history(agent_id: str = AgentId, memory_id: str = MemoryId, ingress: Any = Ingress,
                         tenant: str = Tenant) -> Any:
    entries = accepted(ingress.retriever.history(tenant, agent_id, memory_id))
    return {"results": [HistoryItem.of(e) for e in entries]}


@memory_router.post("/search", response_model=SearchResponse, tags=["retrieval"])
async def search(body: SearchRequest, agent_id: str = AgentId, ingress: Any = Ingress,
                 tenant: str = Tenant) -> Any:
    return accepted(await orchestration.search(ingress, tenant, agent_id, body.query, body.top_k,
                                               body.filters or None, body.rerank, body.mode, body.adaptive))


@memory_router.post("/chat", response_model=ChatResponse, tags=["agents"])
async def chat(body: ChatRequest, agent_id: str = AgentId, ingress: Any = Ingress, tenant: str = Tenant) -> Any:
    messages = [m.model_dump(mode="json") for m in body.messages]
    return accepted(await orchestration.chat(ingress, tenant, agent_id, messages, body.max_tokens))
