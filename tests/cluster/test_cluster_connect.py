"""connect() and ray_session(): who starts Ray owns it; a bad address fails fast and starts nothing."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import ray

from memorylab.cluster import connect, ray_session
from memorylab.cluster.connect import _host_port
from memorylab.errors import MemorylabError


def _closed_loopback_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1", "closed-port"])
def test_unreachable_address_fails_fast_and_starts_no_local_ray(ray_down, monkeypatch, address):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    if address == "closed-port":
        address = f"127.0.0.1:{_closed_loopback_port()}"
    started = time.monotonic()
    with pytest.raises(MemorylabError) as info:
        connect(address)
    # ray.init alone retries an unreachable GCS for minutes before failing.
    assert time.monotonic() - started < 30
    message = str(info.value)
    assert address in message and "could not reach the Ray cluster" in message
    assert "\n" not in message  # one sentence for `error: <message>`, not a traceback
    assert not ray.is_initialized()


def test_unreachable_ray_address_from_the_environment(ray_down, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    with pytest.raises(MemorylabError, match=r"'127\.0\.0\.1:1'"):
        with ray_session():
            pytest.fail("the body must not run without a cluster")
    assert not ray.is_initialized()


def test_unresolvable_host_is_a_sentence_too(ray_down, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # ".invalid" never resolves (RFC 2606), so no lookup leaves the machine for long.
    with pytest.raises(MemorylabError, match=r"no-such-head\.invalid:6379"):
        connect("no-such-head.invalid:6379")
    assert not ray.is_initialized()


@contextlib.contextmanager
def _server(reply: bytes | None):
    """A loopback TCP server that answers every connection with `reply` (None: closes it at once)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                if reply is not None:
                    conn.recv(64)
                    conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.mark.parametrize("reply, seen", [
    (b"HTTP/1.1 400 Bad Request\r\n\r\n", "it answered b'HTTP/1.1 '"),  # the dashboard's port, say
    (None, "it closed the connection"),
])
def test_something_else_than_ray_at_the_address_is_refused_at_once(ray_down, monkeypatch, reply, seen):
    """ray.init would retry a server that is not Ray's GCS for ~40 s (ignoring SIGTERM meanwhile)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    with _server(reply) as address:
        started = time.monotonic()
        with pytest.raises(MemorylabError) as info:
            connect(address)
        assert time.monotonic() - started < 5
    message = str(info.value)
    assert f"{address} accepts connections but is not Ray's GCS ({seen} to an HTTP/2 greeting)" in message
    assert "port 6379" in message and "\n" not in message and not ray.is_initialized()


def test_a_grpc_greeting_passes_the_preflight_and_tls_skips_it(monkeypatch):
    from memorylab.cluster.connect import _check_reachable

    settings = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100])  # a server's SETTINGS frame
    with _server(settings) as address:
        _check_reachable(address)
    monkeypatch.setenv("RAY_USE_TLS", "1")  # a TLS GCS answers a plain greeting with nothing useful
    with _server(b"\x15\x03\x03\x00\x02\x02\x46") as address:
        _check_reachable(address)


@pytest.mark.parametrize("address, expected", [
    ("127.0.0.1:6379", ("127.0.0.1", 6379)),
    ("ray://head-svc:10001", ("head-svc", 10001)),
    ("[::1]:6379", ("::1", 6379)),
    ("auto", None),  # resolved by Ray itself from the running cluster's address file
    ("ray://head-svc", None),
])
def test_address_parsing_for_the_preflight(address, expected):
    assert _host_port(address) == expected


def test_ray_session_owns_only_what_it_started(ray_down, monkeypatch):
    """One local start: nested connect/ray_session calls find Ray running, report False and stop nothing;
    the outer session stops Ray on its way out even when its body raises."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RuntimeError, match="body failed"):
        with ray_session(num_cpus=2):
            assert ray.is_initialized()
            assert ray.cluster_resources()["CPU"] == 2
            assert connect() is False
            assert connect(num_cpus=1) is False
            with ray_session():
                pass
            assert ray.is_initialized()  # the inner session did not own Ray, so it left it running
            assert ray.get(ray.remote(lambda: 41 + 1).options(num_cpus=0.5).remote()) == 42
            raise RuntimeError("body failed")
    assert not ray.is_initialized()


def test_no_address_starts_a_ray_of_its_own(ray_down, monkeypatch):
    """address="local": a bare ray.init() would join a cluster that `ray start` runs on this machine, unasked,
    and refuse num_cpus there. Joining is for an address (RAY_ADDRESS, set by `ray job submit` and KubeRay)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    calls = []
    monkeypatch.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))
    assert connect(num_cpus=3) is True
    (kwargs,) = calls
    assert kwargs["address"] == "local" and kwargs["num_cpus"] == 3


def test_ray_refusing_the_local_arguments_is_one_sentence(ray_down, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)

    def refuse(**kwargs):
        raise ValueError("When connecting to an existing cluster, num_cpus and num_gpus must not be provided.\n"
                         "  (a second line)")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(MemorylabError) as info:
        connect(num_cpus=2)
    assert str(info.value) == ("could not start a local Ray: When connecting to an existing cluster, num_cpus and "
                               "num_gpus must not be provided. (a second line)")
    assert not ray.is_initialized()
