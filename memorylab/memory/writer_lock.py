"""One writer per memory store folder, enforced, not only documented.

The store keeps in-memory mirrors (vectors, BM25, histories) of its LanceDB table and assumes it is
the table's only writer: a second process writing the same folder (a redeploy's old and new replica, two
clusters on one shared volume) would leave each with a stale mirror and could compact away the other's
versions. So a store takes a POSIX lock on `<folder>/.writer.lock` and holds it for its process's life; a
second process waits for it (a replica being replaced lets go when it exits, and the lock goes with a killed
process too), then is refused in one line. The new holder rebuilds its mirrors from the table, where every
acknowledged write already is (each is committed before its reply).

POSIX (lockf) locks belong to the process: a process may open its own store again (tests do), and the lock
file stays open until the process ends, because closing any descriptor of it would drop the lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from memorylab.errors import MemorylabError

LOCK_FILE = ".writer.lock"
_HELD: dict[str, int] = {}  # lock file -> its descriptor, open for this process's life


class StoreLocked(MemorylabError):
    pass


def hold_writer_lock(folder: Path, wait_s: float) -> None:
    """Return once this process is the folder's writer (at once if it already is); StoreLocked after
    `wait_s` seconds of another process holding it."""
    path = str((Path(folder) / LOCK_FILE).resolve())
    if path in _HELD:
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise StoreLocked(f"{folder}: another process writes to this memory store ({holder}) and did not "
                                  f"let go within {wait_s:g} s; a store has one writer: stop that one, or give "
                                  f"this agent another serve.folder") from None
            time.sleep(0.1)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
    _HELD[path] = fd


def release_writer_lock(folder: Path) -> None:
    """Let another process write the folder (this one is done with its store: a bulk load before serving)."""
    fd = _HELD.pop(str((Path(folder) / LOCK_FILE).resolve()), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the process's lock
