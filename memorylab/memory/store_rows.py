"""How the memory store lays out its LanceDB table and checks what it is asked: the schema and row keys,
name, metadata and filter checks, and list cursors. Kept apart from store.py, which is about consistency
(the table, the in-memory mirror, history, listeners)."""

from __future__ import annotations

import base64
import json
from collections import Counter
from typing import Any, Optional

import pyarrow as pa

from memorylab.errors import MemorylabError
from memorylab.memory.records import MemoryRecord

RECORD_FILTERS = ("source", "subject", "attribute")  # record fields a filter may name; other keys are metadata
MAX_METADATA_DEPTH = 32  # nesting of a memory's metadata (the metadata object itself is level 1)


class MemoryNotFound(MemorylabError, KeyError):
    """No live memory with that id for that (tenant, agent). A KeyError too, so `except KeyError` works."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


class MemoryQueryError(MemorylabError, ValueError):
    """A bad argument of a read or write: an unknown filter key, a malformed cursor, a wrong vector shape."""


def table_schema(dim: int) -> pa.Schema:
    return pa.schema([
        pa.field("key", pa.string(), nullable=False), pa.field("id", pa.string(), nullable=False),
        pa.field("tenant", pa.string(), nullable=False), pa.field("agent", pa.string(), nullable=False),
        pa.field("text", pa.string()), pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("created_at", pa.float64()), pa.field("updated_at", pa.float64()), pa.field("source", pa.string()),
        pa.field("subject", pa.string()), pa.field("attribute", pa.string()), pa.field("metadata", pa.string()),
        pa.field("deleted", pa.bool_()), pa.field("history", pa.string()),
    ])


def row_key(tenant: str, agent: str, memory_id: str) -> str:
    return json.dumps([tenant, agent, memory_id])


def compile_filters(filters: Optional[dict[str, Any]], metadata_keys: Counter):
    if not filters:
        return None
    tests = []
    for key, value in filters.items():
        if key in RECORD_FILTERS:
            tests.append(lambda r, k=key, v=value: getattr(r, k) == v)
        elif key.startswith("metadata.") or metadata_keys.get(key, 0) > 0:
            name = key.removeprefix("metadata.")
            tests.append(lambda r, k=name, v=value: k in r.metadata and r.metadata[k] == v)
        else:
            raise MemoryQueryError(f"unknown filter key {key!r}: not one of {', '.join(RECORD_FILTERS)} "
                                   f"nor a metadata key of this agent's memories (use 'metadata.{key}' to force)")
    return lambda r: all(t(r) for t in tests)


def check_names(tenant: Any, agent: Any, memory_id: Any) -> None:
    for field, value in (("tenant", tenant), ("agent", agent)):
        if not isinstance(value, str) or not value:
            raise MemoryQueryError(f"{field} must be a non-empty string, got {value!r}")
    if not isinstance(memory_id, str):  # "" is fine: the store then makes one
        raise MemoryQueryError(f"a memory id must be a string, got {memory_id!r}")


def check_metadata(metadata: Any) -> None:
    """Refuses what could be stored but not read back: metadata nested deeper than MAX_METADATA_DEPTH
    (every later read of the memory would fail to serialize it), and NaN or Infinity (not JSON: read back as null)."""
    if not isinstance(metadata, dict):
        raise MemoryQueryError(f"metadata must be a dict, got {type(metadata).__name__}")
    if nested_deeper_than(metadata, MAX_METADATA_DEPTH):
        raise MemoryQueryError(f"metadata: nested deeper than {MAX_METADATA_DEPTH} levels of objects and lists")
    try:
        json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise MemoryQueryError(f"metadata must be JSON-serializable, without NaN or Infinity: {e}") from None


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether dicts and lists nest more than `limit` levels (the outermost is level 1). Iterative, so that no
    depth (nor a container holding itself) can exhaust the stack."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def encode_cursor(record: MemoryRecord) -> str:
    raw = json.dumps([record.created_at, record.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created_at, memory_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return float(created_at), str(memory_id)
    except Exception:
        raise MemoryQueryError(f"cursor {cursor!r} is not one this store returned") from None
