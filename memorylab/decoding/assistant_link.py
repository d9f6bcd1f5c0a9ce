"""A direct link from the target's process to the assistant's, for ULD over two actors stepping in lockstep.

Each decoding step needs the assistant's next-token logits beside the target's. Through Ray, a step is two
actor calls and two logit arrays through the object store: ~3x slower than the target alone on two cores.
When the two actors share a node (their placement group is STRICT_PACK), the target's actor instead sends
the step's ids to the assistant's actor over a Unix socket, runs its own forward while the assistant runs
its own, and reads the assistant's logits back from the socket: one process per core, no driver in the
loop, and the assistant's step hidden behind the target's.

`LinkServer` runs in the assistant's actor (a thread that answers one connection); `connect` gives the target's
actor a `SocketLink` to it when both are on the same node, else a `RayLink` that makes the same exchange
through actor calls. Both send a step first and receive its logits later, so the two forwards overlap.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import struct
import tempfile
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Callable, Optional

import numpy as np
import torch

# step(session, input_ids, attention_mask, position_ids) -> next-token logits (B, V); end(session)
StepFn = Callable[[str, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]], torch.Tensor]


class LinkServer:
    """Serves `step` and `end` to one target process over a Unix socket in a private temporary folder.

    Requests are pickled tuples (small: a step's ids). A step's float32 logits go into a file both processes
    map (`_Logits`; in /dev/shm where there is one, so in memory), and the answer is their shape and the
    file's name, or an error message: 256 KB of logits a step through the socket itself cost more than the
    assistant's whole forward, in copies and in wake-ups of the two processes. The folder is readable by this
    user only, and the connection needs `authkey`."""

    def __init__(self, step: StepFn, end: Callable[[str], None]) -> None:
        self._step, self._end = step, end
        self._folder = tempfile.mkdtemp(prefix="memorylab-link-", dir=SHM if os.path.isdir(SHM) else None)
        self.address = os.path.join(self._folder, "socket")
        self._logits: Optional[_Logits] = None
        self.authkey = secrets.token_bytes(32)
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self._accepted = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="assistant-link", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        try:
            with self._listener.accept() as conn:
                self._accepted.set()
                self._answer(conn)
        except (OSError, EOFError, AuthenticationError):  # closed before or while serving, or a stranger
            pass
        finally:
            self._accepted.set()
            self.close()

    def _answer(self, conn: Connection) -> None:
        while True:
            request = conn.recv_bytes()
            op = request[:1]
            if op == CLOSE:
                return
            if op == END:
                self._end(request[1:].decode())
                continue
            try:
                logits = self._step(*_unpack_step(request)).float().cpu().contiguous()
            except Exception as e:  # the target's actor raises it, in a sentence, instead of waiting forever
                conn.send_bytes(ERROR + f"{type(e).__name__}: {e}".encode())
                continue
            grown = self._logits is None or self._logits.capacity < logits.numel()
            if grown:
                # Grown, never shrunk: a new file, which the target maps anew (an unlinked file stays mapped).
                if self._logits is not None:
                    os.unlink(self._logits.path)
                self._logits = _Logits(os.path.join(self._folder, f"logits-{logits.numel()}"), logits.numel(),
                                       create=True)
            self._logits.write(logits)
            rows, vocab = logits.shape
            conn.send_bytes(LOGITS + _ANSWER.pack(rows, vocab, self._logits.capacity)
                            + (self._logits.path.encode() if grown else b""))

    @property
    def serving(self) -> bool:
        return self._thread.is_alive()

    def close(self) -> None:
        """Stop offering the link. A connection already made is served until its target closes it."""
        if threading.current_thread() is not self._thread and not self._accepted.is_set():
            # Closing a listening socket does not wake a thread blocked in accept() on Linux: connecting does
            # (the connection then ends at once, and the thread with it).
            try:
                Client(self.address, family="AF_UNIX", authkey=self.authkey).close()
            except (OSError, EOFError):
                pass
            self._thread.join(timeout=5)
        try:
            self._listener.close()
        finally:
            shutil.rmtree(self._folder, ignore_errors=True)


SHM = "/dev/shm"

# Messages are raw bytes behind a one-byte kind, not pickles: on the target's side every microsecond of a step
# counts, and pickling three small arrays took ~0.1 ms there (its caches cold after the forward).
STEP, END, CLOSE, LOGITS, ERROR = b"S", b"E", b"C", b"L", b"X"
_STEP = struct.Struct("<IIII?")  # session bytes, rows, new tokens, mask columns (0: no mask), positions given
_ANSWER = struct.Struct("<IIQ")  # rows, vocabulary, capacity of the logits file; then its path when it is new


def _pack_step(session: str, ids: np.ndarray, mask: Optional[np.ndarray], positions: Optional[np.ndarray]) -> bytes:
    name = session.encode()
    rows, new = ids.shape
    columns = 0 if mask is None else mask.shape[-1]
    parts = [STEP, _STEP.pack(len(name), rows, new, columns, positions is not None), name,
             np.ascontiguousarray(ids, dtype=np.int64).tobytes()]
    if mask is not None:  # 0/1: a byte each
        parts.append(np.ascontiguousarray(mask, dtype=np.uint8).tobytes())
    if positions is not None:
        parts.append(np.ascontiguousarray(positions, dtype=np.int64).tobytes())
    return b"".join(parts)


def _unpack_step(message: bytes) -> tuple[str, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]]:
    named, rows, new, columns, has_positions = _STEP.unpack_from(message, 1)
    at = 1 + _STEP.size
    session = message[at: at + named].decode()
    at += named
    ids = np.frombuffer(message, dtype=np.int64, count=rows * new, offset=at).reshape(rows, new)
    at += 8 * rows * new
    mask = None
    if columns:
        mask = np.frombuffer(message, dtype=np.uint8, count=rows * columns, offset=at).reshape(rows, columns)
        mask = mask.astype(np.int64)
        at += rows * columns
    positions = None
    if has_positions:
        positions = np.frombuffer(message, dtype=np.int64, count=rows * new, offset=at).reshape(rows, new).copy()
    return session, ids.copy(), mask, positions


class _Logits:
    """A float32 array in a file that the assistant's process writes and the target's reads, both mapped."""

    def __init__(self, path: str, capacity: int, *, create: bool = False) -> None:
        if create:
            with open(path, "wb") as f:
                f.truncate(4 * capacity)
            os.chmod(path, 0o600)
        self.path, self.capacity = path, capacity
        self._map = np.memmap(path, dtype=np.float32, mode="r+", shape=(capacity,))
        self._tensor = torch.from_numpy(np.asarray(self._map))  # one view of it all; slices of it are cheap

    def write(self, logits: torch.Tensor) -> None:
        self._tensor[: logits.numel()].copy_(logits.reshape(-1))

    def read(self, rows: int, vocab: int) -> torch.Tensor:
        return self._tensor[: rows * vocab].view(rows, vocab)


class LinkError(RuntimeError):
    """The assistant's side of a link failed a step (its message says why) or went away."""


def _lost(cause: BaseException) -> LinkError:
    return LinkError(f"the assistant's actor closed the link ({type(cause).__name__}: it may have died)")


class SocketLink:
    """The target's end of a `LinkServer` connection: `send_step`, then `receive` (the logits, (B, V))."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._conn = Client(address, family="AF_UNIX", authkey=authkey)
        self._logits: Optional[_Logits] = None

    def send_step(self, session: str, ids: np.ndarray, mask: Optional[np.ndarray],
                  positions: Optional[np.ndarray]) -> None:
        try:
            self._conn.send_bytes(_pack_step(session, ids, mask, positions))
        except OSError as e:
            raise _lost(e) from e

    def receive(self) -> torch.Tensor:
        try:
            answer = self._conn.recv_bytes()
        except (EOFError, OSError) as e:
            raise _lost(e) from e
        if answer[:1] == ERROR:
            raise LinkError(f"the assistant's actor failed a decoding step: {answer[1:].decode()}")
        rows, vocab, capacity = _ANSWER.unpack_from(answer, 1)
        path = answer[1 + _ANSWER.size:]
        if path:  # a new file: the first step, or more logits than the last file held
            self._logits = _Logits(path.decode(), capacity)
        # A view of the mapped file, read before the next step overwrites it (the caller combines it at once).
        return self._logits.read(rows, vocab)

    def end(self, session: str) -> None:
        try:
            self._conn.send_bytes(END + session.encode())
        except OSError:  # the assistant is gone: so is its cache
            pass

    def close(self) -> None:
        try:
            self._conn.send_bytes(CLOSE)
        except OSError:
            pass
        self._conn.close()


class RayLink:
    """The same exchange through actor calls, for an assistant on another node (a PACK or SPREAD group)."""

    def __init__(self, assistant: Any) -> None:
        self._assistant = assistant
        self._pending: Any = None

    def send_step(self, session: str, ids: np.ndarray, mask: Optional[np.ndarray],
                  positions: Optional[np.ndarray]) -> None:
        self._pending = self._assistant.step.remote(session, ids, mask, positions)

    def receive(self) -> torch.Tensor:
        import ray

        logits, self._pending = ray.get(self._pending), None
        return torch.from_numpy(logits if logits.flags.writeable else logits.copy())

    def end(self, session: str) -> None:
        self._assistant.end_session.remote(session)

    def close(self) -> None:
        pass


def connect(assistant: Any) -> SocketLink | RayLink:
    """A link to the assistant's actor: a socket when it runs on this node, else actor calls."""
    import ray

    offer = ray.get(assistant.open_link.remote())
    if offer["node_id"] == ray.get_runtime_context().get_node_id() and hasattr(socket, "AF_UNIX"):
        return SocketLink(offer["address"], offer["authkey"])
    assistant.close_link.remote(offer["address"])
    return RayLink(assistant)
