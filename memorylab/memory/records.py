"""The records the memory store keeps: a memory and one entry of its history.

Times are Unix seconds (float, UTC); the HTTP layer renders them as ISO 8601.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Optional

Event = Literal["ADD", "UPDATE", "DELETE", "NOOP"]


@dataclass(frozen=True)
class MemoryRecord:
    id: str
    tenant: str
    agent: str
    text: str
    created_at: float
    updated_at: float
    source: str = ""  # where the fact came from, e.g. "session 3, turn 5" or "api"
    # The (subject, attribute) a fact is about, when the policy could tell: two memories with the same key
    # and different text are a conflict, so the newer one UPDATEs the older.
    subject: Optional[str] = None
    attribute: Optional[str] = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HistoryEntry:
    memory_id: str
    event: Event
    old_text: Optional[str]
    new_text: Optional[str]
    at: float
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
