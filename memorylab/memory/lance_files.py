"""What LanceDB leaves on disk, and who may write it: erasing deleted rows from a table's files, and a lock
that serializes the writers of one table on one machine.

A LanceDB delete or merge-insert only marks rows deleted and commits a new version: the old text stays in its
data file and every older version still names it. Erasing it means compacting (data files rewritten without
the deleted rows) and then dropping every version but the newest, with their files.

LanceDB lets writers commit concurrently, and two merge-inserts of the same new id both see it missing and
both insert it: two rows. `TableLock` is an flock on a file beside the table, so the writers of a table on
one machine (actors in several processes, or threads) take turns, and readers wait while a writer erases old
versions they might be reading. flock does not reach across machines (nor, reliably, across NFS clients): a
table on storage shared by several nodes must have a single writer.
"""

from __future__ import annotations

import fcntl
import os
import warnings
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator


def erase_deleted_rows(table: Any) -> None:
    """Compacts `table` and drops all its versions but the newest, so deleted and overwritten rows are gone
    from disk. LanceDB warns that readers of older versions would fail: callers hold the table's write lock."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)


class TableLock:
    """flock on `<folder>/.<table>.lock`: `write()` exclusive, `read()` shared. Each use opens its own file
    descriptor, so threads of one process exclude each other as processes do."""

    def __init__(self, folder: str | Path, table: str) -> None:
        # A URI (s3://, gs://...) has no local file to lock: one writer, as on a shared filesystem.
        self.path = None if "://" in str(folder) else Path(folder) / f".{table}.lock"
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def _held(self, mode: int) -> Iterator[None]:
        if self.path is None:
            yield
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    def write(self) -> Any:
        return self._held(fcntl.LOCK_EX)

    def read(self) -> Any:
        return self._held(fcntl.LOCK_SH)
