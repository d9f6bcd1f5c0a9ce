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

    Requests are pickled tuples (small: a step's ids); a step's answer is its float32 logits as raw bytes, or
    an error message. The socket's folder is readable by this user only, and the connection needs `authkey`."""

    def __init__(self, step: StepFn, end: Callable[[str], None]) -> None:
        self._step, self._end = step, end
        self._folder = tempfile.mkdtemp(prefix="memorylab-link-")
        self.address = os.path.join(self._folder, "socket")
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
            request = conn.recv()
            if request[0] == "close":
                return
            if request[0] == "end":
                self._end(request[1])
                continue
            _, session, ids, mask, positions = request
            try:
                logits = self._step(session, ids, mask, positions).float().cpu().contiguous()
            except Exception as e:  # the target's actor raises it, in a sentence, instead of waiting forever
                conn.send(("error", f"{type(e).__name__}: {e}"))
                continue
            conn.send(("logits", tuple(logits.shape)))
            conn.send_bytes(memoryview(logits.numpy()).cast("B"))

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


class LinkError(RuntimeError):
    """The assistant's side of a link failed a step (its message says why) or went away."""


def _lost(cause: BaseException) -> LinkError:
    return LinkError(f"the assistant's actor closed the link ({type(cause).__name__}: it may have died)")


class SocketLink:
    """The target's end of a `LinkServer` connection: `send_step`, then `receive` (the logits, (B, V))."""

    def __init__(self, address: str, authkey: bytes) -> None:
        self._conn = Client(address, family="AF_UNIX", authkey=authkey)
        self._buffer = bytearray()

    def send_step(self, session: str, ids: np.ndarray, mask: Optional[np.ndarray],
                  positions: Optional[np.ndarray]) -> None:
        try:
            self._conn.send(("step", session, ids, mask, positions))
        except OSError as e:
            raise _lost(e) from e

    def receive(self) -> torch.Tensor:
        try:
            kind, value = self._conn.recv()
            if kind == "error":
                raise LinkError(f"the assistant's actor failed a decoding step: {value}")
            size = 4 * int(np.prod(value))
            if len(self._buffer) < size:
                self._buffer = bytearray(size)
            self._conn.recv_bytes_into(self._buffer)
        except (EOFError, OSError) as e:
            raise _lost(e) from e
        # A view of the buffer, read before the next step overwrites it (the caller combines it at once).
        return torch.frombuffer(self._buffer, dtype=torch.float32, count=size // 4).view(value)

    def end(self, session: str) -> None:
        try:
            self._conn.send(("end", session))
        except OSError:  # the assistant is gone: so is its cache
            pass

    def close(self) -> None:
        try:
            self._conn.send(("close",))
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
