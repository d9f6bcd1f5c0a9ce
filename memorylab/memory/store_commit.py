"""One commit per request: what MemoryStore writes inside `one_commit()` reaches the table in a single
LanceDB commit at its end, so an add request's facts are stored all or none, also when the process dies
halfway (nothing of the request is on disk before that commit). Inside, the store's mirrors already show the
staged writes, since a request's later facts are decided against its earlier ones (a duplicate, an update of
a memory it just added); listeners (the BM25 index) hear of them only once the commit is durable. A commit
that fails leaves the table as it was, and the agent's mirrors are rebuilt from it."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import pyarrow as pa
import pyarrow.compute as pc

from memorylab.memory.store_rows import agent_key_prefix


class OneCommit:
    """Mixed into MemoryStore: `_write` and `_notify_later` stand for its table writes and notifications."""

    _staged: Optional[list[tuple[pa.Table, bool]]] = None
    _staged_events: list[tuple[str, list]]

    @contextlib.contextmanager
    def one_commit(self, tenant: str, agent: str) -> Iterator[None]:
        with self._write_lock:
            if self._staged is not None:  # nested: the outer one commits
                yield
                return
            self._staged, self._staged_events = [], []
            try:
                yield
                staged = self._staged
                self._staged = None
                if staged:
                    self._write(_last_per_key(pa.concat_tables([rows for rows, _ in staged])),
                                append=all(append for _, append in staged))
            except BaseException:
                self._staged = None
                self._reload_agent(tenant, agent)
                raise
            for event, records in self._staged_events:
                self._notify(event, records)

    def _write(self, rows: pa.Table, append: bool) -> None:
        """Append (rows with new keys only: the fast path) or merge by key; staged inside one_commit()."""
        if self._staged is not None:
            self._staged.append((rows, append))
        elif append:
            self._table.add(rows)
        else:
            self._merge(rows)

    def _notify_later(self, event: str, records: list) -> None:
        if self._staged is not None:
            self._staged_events.append((event, records))
        else:
            self._notify(event, records)

    def _reload_agent(self, tenant: str, agent: str) -> None:
        """The agent's mirrors as the table has them (after a commit that failed)."""
        data = self._table.to_arrow()
        mine = data.filter(pc.and_(pc.equal(data["tenant"], tenant), pc.equal(data["agent"], agent)))
        prefix = agent_key_prefix(tenant, agent)
        with self._mirror_lock:
            self._partitions.pop((tenant, agent), None)
        for key in [k for k in self._history if k.startswith(prefix)]:
            del self._history[key]
            self._tombstones.discard(key)
        self._load_rows(mine)


def _last_per_key(rows: pa.Table) -> pa.Table:
    """One row per key, the last staged (a memory added then updated in one request is written once)."""
    keys = rows.column("key").to_pylist()
    last = {k: i for i, k in enumerate(keys)}
    return rows.take(sorted(last.values())) if len(last) < len(keys) else rows
