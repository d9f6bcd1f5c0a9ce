"""Purges share their compactions. A purge is done only when the table's older versions, which still hold the
erased texts, are compacted away, and that rewrites the whole table: one compaction per purge let a client
that purges in a loop keep the store rewriting itself. Here a purge asks for an erasure after its commit and
waits for the first compaction that starts after that commit; every purge committed while one compaction
runs is covered by the next, single one (a group commit)."""

from __future__ import annotations

import threading
from typing import Callable


class SharedErasure:
    def __init__(self, compact: Callable[[], None]) -> None:
        self._compact = compact
        self._cond = threading.Condition()
        self._asked = 0  # erasures asked for (each after its purge's commit)
        self._covered = 0  # erasures the compactions done so far cover
        self._running = False
        self.compactions = 0

    def erase(self) -> None:
        """Return once a compaction that started after this call is done (and raise its error, if it failed)."""
        with self._cond:
            self._asked += 1
            mine = self._asked
            while self._covered < mine:
                if self._running:
                    self._cond.wait()
                    continue
                self._running, target = True, self._asked  # this run covers every erasure asked until now
                self._cond.release()
                try:
                    self._compact()
                    self.compactions += 1
                finally:
                    self._cond.acquire()
                    self._running = False
                    self._cond.notify_all()
                self._covered = max(self._covered, target)
