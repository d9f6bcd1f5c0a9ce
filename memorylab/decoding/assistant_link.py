"""A direct link from the target's process to the assistant's, for ULD over two actors stepping in lockstep.

Each decoding step needs the assistant's next-token logits beside the target's. Through Ray, a step is two
actor calls and two logit arrays through the object store, which makes it several times slower than the
target's step alone. When the two actors share a node (their placement group is STRICT_PACK), the target's
actor instead sends the step's ids to the assistant's actor over a Unix socket, runs its own forward while the
assistant runs its own, and then reads the assistant's logits from a file both processes map: one process per
core, no driver in the loop, and the assistant's step hidden behind the target's.

`LinkServer` runs in the assistant's actor (a thread that answers one connection); `connect` gives the target's
actor a `SocketLink` to it when both are on the same node, else a `RayLink` that makes the same exchange
through actor calls. Both send a step first and receive its logits later, so the two forwards overlap.
"""

from __future__ import annotations

import os
import secrets
import socket
import struct
import tempfile
import threading
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from typing import Any, Callable, Optional

import numpy as np
import torch

from memorylab.arrays import tensor_from

# step(session, input_ids, attention_mask, position_ids) -> next-token logits (B, V); end(session)
StepFn = Callable[[str, np.ndarray, Optional[np.ndarray], Optional[np.ndarray]], torch.Tensor]


SHM = "/dev/shm"

# Messages are raw bytes behind a one-byte kind, not pickles: on the target's side every microsecond of a step
# counts, and pickling even three small arrays is slow there (its caches cold after the forward).
STEP, END, CLOSE, LOGITS, ERROR = b"S", b"E", b"C", b"L", b"X"
_STEP = struct.Struct("<IIII?")  # session bytes, rows, new tokens, mask columns (0: no mask), positions given
_ANSWER = struct.Struct("<IIQ")  # rows, vocabulary, capacity of the logits file; then its path when it is new


class LinkServer:
    """Serves `step` and `end` to one target process over a Unix socket (in /dev/shm where there is one).

    Requests are raw bytes (a step's ids). A step's float32 logits go into a file both processes map
    (`_Logits`), and the answer is their shape (and the file's name when it is new), or an error message:
    a step's logits sent through the socket itself would cost more than the assistant's whole forward, in
    copies and wake-ups of the two processes. The connection needs `authkey`.

    Nothing stays on disk once the target is connected, since `ray.kill` runs no cleanup: the socket's name
    goes when the connection is accepted, and a logits file's once the target has mapped it (which its next
    request says)."""

    def __init__(self, step: StepFn, end: Callable[[str], None]) -> None:
        self._step, self._end = step, end
        self._base = os.path.join(SHM if os.path.isdir(SHM) else tempfile.gettempdir(),
                                  f"memorylab-link-{secrets.token_hex(8)}")
        self.address = self._base + ".sock"
        self.authkey = secrets.token_bytes(32)
        self._listener: Optional[Listener] = Listener(self.address, family="AF_UNIX", authkey=self.authkey)
        self._logits: Optional[_Logits] = None
        self._unmapped: Optional[str] = None  # the name of a logits file the target has not mapped yet
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="assistant-link", daemon=True)
        self._thread.start()

    @property
    def serving(self) -> bool:
        return self._thread.is_alive()

    def _serve(self) -> None:
        try:
            conn = self._accept()
            if conn is None:
                return
            with conn:
                self._answer(conn)
        except (OSError, EOFError):  # the target closed its end or died: nothing is left to answer
            pass
        finally:
            self._forget_unmapped()
            self.close()

    def _accept(self) -> Optional[Connection]:
        while True:
            listener = self._listener
            if listener is None:
                return None
            try:
                conn = listener.accept()
            except AuthenticationError:  # a stranger without the key: keep waiting for the target
                continue
            self._close_listener()  # its name goes now: no one else connects, and nothing is left behind
            if self._closed:  # the connection that close() made to wake this thread
                conn.close()
                return None
            return conn

    def _answer(self, conn: Connection) -> None:
        while True:
            request = conn.recv_bytes()
            self._forget_unmapped()  # the target maps a new file before it sends anything more
            op = request[:1]
            if op == CLOSE:
                return
            if op == END:
                self._end(request[1:].decode())
                continue
            try:
                logits = self._step(*_unpack_step(request)).float().cpu().contiguous()
                new_file = self._fit(logits.numel())
                self._logits.write(logits)
            except Exception as e:  # the target's actor raises it, in a sentence, instead of waiting forever
                conn.send_bytes(ERROR + f"{type(e).__name__}: {e}".encode())
                continue
            rows, vocab = logits.shape
            conn.send_bytes(LOGITS + _ANSWER.pack(rows, vocab, self._logits.capacity) + new_file.encode())

    def _fit(self, size: int) -> str:
        """Make the logits file hold `size` floats; the new file's name when one was made, else ''."""
        if self._logits is not None and self._logits.capacity >= size:
            return ""
        # Grown, never shrunk: a new file, which the target maps anew (the old one stays mapped until then).
        self._logits = _Logits(f"{self._base}-{size}", size, create=True)
        self._unmapped = self._logits.path
        return self._logits.path

    def _forget_unmapped(self) -> None:
        path, self._unmapped = self._unmapped, None
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def _close_listener(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()  # (removes the socket's name)
            except FileNotFoundError:
                pass

    def close(self) -> None:
        """Stop offering the link (idempotent). A connection already made is served until its target closes it."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if threading.current_thread() is not self._thread and self._listener is not None:
            # Closing a listening socket does not wake a thread blocked in accept() on Linux: connecting does.
            try:
                Client(self.address, family="AF_UNIX", authkey=self.authkey).close()
            except (OSError, EOFError, AuthenticationError):
                pass
            self._thread.join(timeout=5)
        self._close_listener()


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
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                # Reserved, not sparse: a full /dev/shm is then an OSError here, not a SIGBUS at the first write.
                if hasattr(os, "posix_fallocate"):
                    os.posix_fallocate(fd, 0, 4 * capacity)
                else:  # (macOS)
                    os.ftruncate(fd, 4 * capacity)
            finally:
                os.close(fd)
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
        try:
            self._conn = Client(address, family="AF_UNIX", authkey=authkey)
        except (OSError, EOFError, AuthenticationError) as e:
            raise LinkError(f"cannot link to the assistant's actor at {address}: {type(e).__name__}: {e}") from e
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
        return tensor_from(logits)

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
