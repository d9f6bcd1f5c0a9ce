"""The HTTP API's request and response bodies (pydantic): FastAPI validates requests against them (422 names
the field) and publishes them in /openapi.json. Sizes are bounded so one request cannot exhaust a replica."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from memorylab.memory.records import HistoryEntry, MemoryRecord
from memorylab.memory.store_rows import MAX_METADATA_DEPTH, check_metadata, nested_deeper_than

AGENT_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
MAX_TEXT = 20_000
MAX_MESSAGES = 200
_DATETIME = TypeAdapter(datetime)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("only whitespace: give some text")
    return value


# A memory's text or a search query: whitespace alone is refused here (422 naming the field), not by the store
# after validation passed it (a 400), nor searched (it would match memories at random).
Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT), AfterValidator(_not_blank)]


def valid_unicode(value: Any, where: str = "") -> Any:
    """`value` unchanged, or a ValueError when a string in it (keys too) holds a lone surrogate ("\\ud800" in
    JSON): pydantic refuses those in `str` fields, but free-form metadata and filters would carry one into the
    store and into a reply that then cannot be encoded as UTF-8 (a 500)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(f"{where or 'value'}: not valid Unicode (a lone surrogate)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            valid_unicode(k, f"{where}[key]")
            valid_unicode(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            valid_unicode(v, f"{where}[{i}]")
    return value


def valid_metadata(value: Optional[dict]) -> Optional[dict]:
    """A memory's metadata as the store will take it (store_rows.check_metadata: nesting at most 32 deep, no
    NaN or Infinity, which Python's JSON parser accepts), with valid Unicode; a ValueError (422) if not.
    Checked here too so the refusal is a 422 naming `metadata` before any fact of the request is written."""
    if value is not None:
        check_metadata(value)  # first: valid_unicode recurses, and this bounds the depth
        valid_unicode(value)
    return value


class Message(_Body):
    role: Literal["system", "user", "assistant", "tool"]
    content: str = Field(..., max_length=MAX_TEXT)
    timestamp: Union[str, int, float, None] = Field(
        None, description="when it was said: ISO 8601 or Unix seconds. Kept as sent (the memories' metadata."
                          "timestamp), so a `timestamp` filter finds them with the value as sent")

    @field_validator("timestamp")
    @classmethod
    def _a_time(cls, value: Any) -> Any:
        # Stored as sent, not as pydantic rewrites a datetime ("+00:00" becomes "Z"): a filter with the value
        # the client sent would miss it. Checked all the same, as a datetime field would check it.
        if value is not None:
            try:
                _DATETIME.validate_python(value)
            except ValidationError:
                raise ValueError("not a date and time: ISO 8601 (2024-05-01T10:00:00Z) or Unix seconds") from None
        return value


class AddMemoriesRequest(_Body):
    messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES)
    infer: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64)
    async_: bool = Field(False, alias="async", description="answer 202 with an event id once the add is durably "
                         "queued; it is applied in order with the agent's other writes (GET .../events/{event_id})")

    _metadata = field_validator("metadata")(valid_metadata)


class MemoryEvent(BaseModel):
    id: str
    memory: str
    event: Literal["ADD", "UPDATE", "DELETE", "NOOP"]
    previous_memory: Optional[str] = None


class AddMemoriesResponse(BaseModel):
    results: list[MemoryEvent]


class AddQueued(BaseModel):
    event_id: str
    status: Literal["queued"]


class AddEvent(BaseModel):
    """An async add: queued, then applied (with the results a synchronous add gives) or failed (with why)."""

    event_id: str
    status: Literal["queued", "applied", "failed"]
    created_at: str
    finished_at: Optional[str] = None
    results: Optional[list[MemoryEvent]] = None
    error: Optional[str] = None

    @classmethod
    def of(cls, event: dict) -> "AddEvent":
        finished = event["finished_at"]
        return cls(**{**event, "created_at": iso(event["created_at"]),
                      "finished_at": iso(finished) if finished is not None else None})


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
    memory: Text
    metadata: Optional[dict[str, Any]] = Field(None, max_length=64)

    _metadata = field_validator("metadata")(valid_metadata)


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
    purged: bool = False


class SearchRequest(_Body):
    query: Text
    top_k: int = Field(5, ge=1, le=100)
    filters: dict[str, Any] = Field(default_factory=dict, max_length=16)
    rerank: Optional[Literal["none", "cross_encoder", "listwise_first"]] = Field(
        None, description="default: the scenario's reranker")
    mode: Optional[Literal["dense", "bm25", "hybrid"]] = Field(None, description="default: the scenario's mode")
    adaptive: bool = Field(False, description="let the agent's adaptive policy decide whether to retrieve at all")

    @field_validator("filters")
    @classmethod
    def _bounded(cls, value: Any) -> Any:
        # A filter value is compared with a metadata value, at most MAX_METADATA_DEPTH deep: a deeper one can
        # match nothing, and its depth would be walked by every check below and every comparison after.
        if nested_deeper_than(value, MAX_METADATA_DEPTH):
            raise ValueError(f"nested deeper than {MAX_METADATA_DEPTH} levels of objects and lists "
                             "(a memory's metadata is never deeper)")
        return valid_unicode(value)


class SearchHit(BaseModel):
    """One memory found, best first: in retrieval order, or in the reranker's when the search reranked."""

    id: str
    memory: str
    score: float = Field(..., description="the retrieval score (hybrid fusion, dense cosine or BM25, by mode); "
                                          "a reranked search lists hits in the reranker's order, so scores "
                                          "need not decrease down the list: the order is the ranking")


class SearchResponse(BaseModel):
    results: list[SearchHit]
    retrieved: bool
    timings_ms: dict[str, float]


class ChatRequest(_Body):
    messages: list[Message] = Field(..., min_length=1, max_length=MAX_MESSAGES,
                                    description="the last `user` message is the question the agent answers")
    max_tokens: Optional[int] = Field(None, ge=1, le=1024)

    @field_validator("messages")
    @classmethod
    def _has_question(cls, messages: list[Message]) -> list[Message]:
        return needs_user_message(messages)


def needs_user_message(messages: list[Message]) -> list[Message]:
    """An agent answers the last user message; without one there is no question (a 422, before the agent runs)."""
    if not any(m.role == "user" for m in messages):
        raise ValueError("no message with role 'user': the agent answers the last user message")
    return messages


class ChatResponse(BaseModel):
    answer: str
    used_memories: list[str]
    retrieved: bool
    decision: dict[str, Any] = Field(default_factory=dict, description="why the agent did or did not retrieve")
    context_tokens: int = Field(0, description="the tokens of the prompt the generator read (memories + question; "
                                               "estimated for an OpenAI-compatible generator)")
    finish_reason: Literal["stop", "length"] = Field("stop", description="length: max_tokens cut the answer")


def iso(ts: float) -> str:
    from datetime import timezone

    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
