"""One commit per request: what MemoryStore writes inside `one_commit()` reaches the table in a single
LanceDB commit at its end, so an add request's facts are stored all or none, also when the process dies
halfway (nothing of the request is on disk before that commit). Inside, the store's mirrors already show the
staged writes, since a request's later facts are decided against its earlier ones (a duplicate, an update of
a memory it just added); listeners (the BM25 index) hear of them only once the commit is durable. A commit
that fails leaves the table as it was, and the agent's state is read from it again on next use.

Staging is per thread and holds no store-wide lock: while one agent's request waits on its generator
(`infer: true`), other agents' writes go on. Callers keep one agent's writes one at a time (the replica's
per-agent locks), so what one thread stages no other thread writes."""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator, Optional

import pyarrow as pa


class OneCommit:
    """Mixed into MemoryStore (which sets `_staging`, a threading.local, per store, and provides `_writing`,
    `_drop_agent` and `_check_open`): `_write` and `_notify_later` stand for its table writes and
    notifications."""

    _staging: threading.local

    @property
    def _staged(self) -> Optional[list[tuple[pa.Table, bool]]]:
        return getattr(self._staging, "rows", None)

    @contextlib.contextmanager
    def one_commit(self, tenant: str, agent: str) -> Iterator[None]:
        if self._staged is not None:  # nested: the outer one commits
            yield
            return
        # The agent stays in memory until its listeners heard of the commit (resident.py).
        with self._writing([(tenant, agent)], create=True):
            self._staging.rows, self._staging.events = [], []
            try:
                yield
                staged, events = self._staging.rows, self._staging.events
                self._staging.rows = None
                if staged:
                    with self._write_lock:
                        self._write(_last_per_key(pa.concat_tables([rows for rows, _ in staged])),
                                    append=all(append for _, append in staged))
            except BaseException:
                staged, self._staging.rows = self._staging.rows, None
                if staged is None or staged:  # something was staged (or the commit itself failed)
                    # The agent's state shows writes the table does not have: it is read again on next use.
                    self._drop_agent(tenant, agent)
                raise
            finally:
                self._staging.rows = None
            with self._write_lock:
                for event, records in events:
                    self._notify(event, records)

    def _write(self, rows: pa.Table, append: bool) -> None:
        """Append (rows with new keys only: the fast path) or merge by key; staged inside one_commit()."""
        self._check_open()
        staged = self._staged
        if staged is not None:
            staged.append((rows, append))
        elif append:
            self._table.add(rows)
        else:
            self._merge(rows)

    def _notify_later(self, event: str, records: list) -> None:
        if self._staged is not None:
            self._staging.events.append((event, records))
        else:
            self._notify(event, records)


def _last_per_key(rows: pa.Table) -> pa.Table:
    """One row per key, the last staged (a memory added then updated in one request is written once)."""
    keys = rows.column("key").to_pylist()
    last = {k: i for i, k in enumerate(keys)}
    return rows.take(sorted(last.values())) if len(last) < len(keys) else rows
