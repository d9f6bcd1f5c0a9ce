"""The durable queue of asynchronous adds: a LanceDB table `add_events` beside the memory table, one row per
`POST .../memories` sent with `"async": true`. A request is acknowledged only after its row is committed, so a
process that dies with adds queued loses none: the next one finds them with status "queued" and applies them.

Columns: event_id (uuid4 hex), tenant, agent, seq (the order of arrival, which is the order an agent's adds are
applied in), created_at, the request as JSON (messages, infer, metadata), status ("queued", "applied",
"failed"), results (JSON, when applied), error (one line, when failed), finished_at.

Finished events are kept `retention_s` for clients to read their status, then deleted (prune()).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional

import pyarrow as pa

from memorylab.memory.lance_files import ensure_scalar_index
from memorylab.memory.store_reads import sql_literal

TABLE = "add_events"
SCHEMA = pa.schema([
    pa.field("event_id", pa.string(), nullable=False), pa.field("tenant", pa.string(), nullable=False),
    pa.field("agent", pa.string(), nullable=False), pa.field("seq", pa.int64(), nullable=False),
    pa.field("created_at", pa.float64()), pa.field("request", pa.string()), pa.field("status", pa.string()),
    pa.field("results", pa.string()), pa.field("error", pa.string()), pa.field("finished_at", pa.float64()),
])


def event_source(event_id: str) -> str:
    """The `source` an async add writes its memories with: how a restart tells an add that was applied but not
    yet marked so (its memories carry it) from one that was not."""
    return f"api event {event_id}"


class AddQueue:
    """Thread-safe; every method is one LanceDB read or commit (run them off the event loop)."""

    def __init__(self, folder: str | Path) -> None:
        import lancedb

        self._db = lancedb.connect(str(folder))
        self._table = self._db.create_table(TABLE, schema=SCHEMA, exist_ok=True)
        # A status lookup reads one row: through the index rather than a scan of every event kept.
        ensure_scalar_index(self._table, "event_id")
        self._lock = threading.Lock()
        last = self._table.search().select(["seq"]).limit(None).to_arrow().column("seq").to_pylist()
        self._seq = max(last, default=-1) + 1
        self._commits = 0

    def put(self, tenant: str, agent: str, request: dict[str, Any]) -> dict[str, Any]:
        """Queues one add and returns its event once the queue's row is durable."""
        return self.put_many([(tenant, agent, request)])[0]

    def put_many(self, adds: list[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Queues (tenant, agent, request) adds in this order, in one commit; their events once durable."""
        with self._lock:
            now = time.time()
            events = [{"event_id": uuid.uuid4().hex, "tenant": tenant, "agent": agent, "seq": self._seq + i,
                       "created_at": now, "request": json.dumps(request), "status": "queued", "results": None,
                       "error": None, "finished_at": None} for i, (tenant, agent, request) in enumerate(adds)]
            self._table.add(pa.Table.from_pylist(events, schema=SCHEMA))
            self._seq += len(events)
            self._after_commit()
        return events

    def queued(self) -> list[dict[str, Any]]:
        """Every event not applied yet, in order of arrival."""
        rows = self._table.search().where("status = 'queued'").limit(None).to_arrow().to_pylist()
        return sorted(rows, key=lambda e: e["seq"])

    def finish(self, done: list[tuple[dict[str, Any], str, Optional[list], Optional[str]]]) -> None:
        """Marks events (as put_many or queued gave them) with (event, status, results, error), in one commit."""
        now = time.time()
        rows = [{**event, "status": status, "results": json.dumps(results) if results is not None else None,
                 "error": error, "finished_at": now} for event, status, results, error in done]
        with self._lock:
            (self._table.merge_insert("event_id").when_matched_update_all()
             .execute(pa.Table.from_pylist(rows, schema=SCHEMA)))
            self._after_commit()

    def get(self, tenant: str, agent: str, event_id: str) -> Optional[dict[str, Any]]:
        where = " AND ".join(f"{c} = {sql_literal(v)}" for c, v in
                             (("event_id", event_id), ("tenant", tenant), ("agent", agent)))
        rows = self._table.search().where(where).limit(1).to_arrow().to_pylist()
        return rows[0] if rows else None

    def prune(self, retention_s: float) -> None:
        """Deletes events finished more than `retention_s` ago, and compacts the table."""
        with self._lock:
            self._table.delete(f"status <> 'queued' AND finished_at < {time.time() - retention_s!r}")
            self._table.optimize()

    def _after_commit(self) -> None:
        # Every commit is a small file: compacting now and then keeps reads (status lookups) fast.
        self._commits += 1
        if self._commits % 256 == 0:
            self._table.optimize()
