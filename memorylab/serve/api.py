"""The HTTP API's request and response bodies (pydantic): FastAPI validates requests against them (422 names
the field) and publishes them in /openapi.json. Sizes are bounded so one request cannot exhaust a replica."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from memorylab.memory.records import HistoryEntry, MemoryRecord

AGENT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_TEXT = 20_000
MAX_MESSAGES = 200


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(..., max_length=MAX_TEXT)
    timestamp: Optional[datetime] = None


class AddMemoriesRequest(_Body):
    messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    infer: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64)


class MemoryEvent(BaseModel):
    id: str
    memory: str
    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    previous_memory: Optional[str] = None


class AddMemoriesResponse(BaseModel):
    results: list[MemoryEvent]


class Memory(BaseModel):
    id: str
    memory: str
    created_at: str
    updated_at: str
    source: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, record: MemoryRecord) -> "Memory":
        return cls(id=record.id, memory=record.text, created_at=iso(record.created_at),
                   updated_at=iso(record.updated_at), source=record.source, metadata=record.metadata)


class MemoryList(BaseModel):
    results: list[Memory]
    next_cursor: Optional[str] = None


class UpdateMemoryRequest(_Body):
    memory: str = Field(..., min_length=1, max_length=MAX_TEXT)
    metadata: Optional[dict[str, Any]] = Field(None, max_length=64)


class HistoryItem(BaseModel):
    memory_id: str
    event: Literal["ADD", "UPDATE", "DELETE"]
    old_memory: Optional[str] = None
    new_memory: Optional[str] = None
    at: str
    source: str = ""

    @classmethod
    def of(cls, entry: HistoryEntry) -> "HistoryItem":
        return cls(memory_id=entry.memory_id, event=entry.event, old_memory=entry.old_text,
                   new_memory=entry.new_text, at=iso(entry.at), source=entry.source)


class HistoryResponse(BaseModel):
    results: list[HistoryItem]


class DeletedResponse(BaseModel):
    id: str
    deleted: bool = True


class SearchRequest(_Body):
    query: str = Field(..., min_length=1, max_length=MAX_TEXT)
    top_k: int = Field(5, ge=1, le=100)
    filters: dict[str, Any] = Field(default_factory=dict, max_length=16)
    rerank: Optional[Literal["none", "cross_encoder", "listwise_first"]] = Field(
        None, description="default: the scenario's reranker")
    mode: Optional[Literal["dense", "bm25", "hybrid"]] = Field(None, description="default: the scenario's mode")
    adaptive: bool = Field(False, description="let the agent's adaptive policy decide whether to retrieve at all")


class SearchHit(BaseModel):
    id: str
    memory: str
    score: float


class SearchResponse(BaseModel):
    results: list[SearchHit]
    retrieved: bool
    timings_ms: dict[str, float]


class ChatRequest(_Body):
    messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    max_tokens: Optional[int] = Field(None, ge=1, le=1024)


class ChatResponse(BaseModel):
    answer: str
    used_memories: list[str]
    retrieved: bool
    decision: dict[str, Any] = Field(default_factory=dict, description="why the agent did or did not retrieve")


def iso(ts: float) -> str:
    from datetime import timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
