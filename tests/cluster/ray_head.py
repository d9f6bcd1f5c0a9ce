"""A real Ray head in its own processes, for the tests that talk to Ray from outside (the Jobs API).

`ray start --head --block` on loopback, on free ports and under its own temp dir, in a new session. It is
stopped by signalling only that process (with --block it tears down every process it started), then by
killing whatever still names its temp dir: never `ray stop`, which would kill every Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import psutil

BIN = Path(sys.executable).parent  # the venv's bin: `ray`, and `memorylab` for job entrypoints
# A job's `pip` runtime_env makes its virtualenv by copying the one Ray runs in, when Ray runs in a virtualenv
# (ray/_private/runtime_env/virtualenv_utils.py, no option to turn it off): here all of .venv, 2.5 GB and 70k
# files, under the head's temp dir. On this disk, on a busy machine, writing it took 10-55 s and deleting it
# 15-70 s; in memory (tmpfs) 10 s and 1 s. So the temp dir goes there when memory can spare it, else to /tmp.
# (Ray's own image, the Dockerfile's base, has Ray outside any virtualenv: there pip makes a light one.)
RAM_DIR = Path("/dev/shm")
RAM_DIR_NEEDS_GIB = 6  # the copy, the head's 300 MB object store and room for everyone else
PORT_FLAGS = ("port", "dashboard-port", "ray-client-server-port", "node-manager-port", "object-manager-port",
              "dashboard-agent-listen-port", "dashboard-agent-grpc-port", "metrics-export-port",
              "runtime-env-agent-port")


@dataclass
class RayHead:
    gcs_address: str
    dashboard_url: str
    token: str
    temp_dir: Path
    log: Path

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_ports(n: int) -> list[int]:
    """n distinct loopback ports that were free a moment ago (held together, so no two are the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _temp_root() -> str:
    """/dev/shm when it and the machine's free memory can take the head's temp dir, else /tmp."""
    needed = RAM_DIR_NEEDS_GIB * 2**30
    with contextlib.suppress(OSError):
        if (os.access(RAM_DIR, os.W_OK) and shutil.disk_usage(RAM_DIR).free > needed
                and psutil.virtual_memory().available > needed):
            return str(RAM_DIR)
    return "/tmp"


def _wait_ready(proc: subprocess.Popen, url: str, headers: dict, log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/version", headers=headers, timeout=2).status_code == 200:
                return
        time.sleep(0.5)
    raise RuntimeError(f"the Ray head's dashboard did not answer within {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen, temp_dir: Path) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # --block: drains the node, then kills all it started
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    # Leftovers (a worker that outlived its raylet): every Ray process of this head names its temp dir on its
    # command line (socket and session paths), and no other Ray's does. A job's driver is not among them: Ray
    # kills its process group itself once the job's supervisor is gone.
    marker = str(temp_dir)
    left = [p for p in psutil.process_iter(["cmdline"]) if any(marker in a for a in p.info["cmdline"] or ())]
    for p in left:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(left, timeout=10)
    shutil.rmtree(temp_dir, ignore_errors=True)


@contextlib.contextmanager
def ray_head(num_cpus: int = 2, timeout_s: float = 120) -> Iterator[RayHead]:
    # A short path: Ray puts unix sockets under the temp dir, and a socket path has 107 bytes at most.
    temp_dir = Path(tempfile.mkdtemp(prefix="mlray-", dir=_temp_root()))
    ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
    cmd = [str(BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", f"--num-cpus={num_cpus}", "--num-gpus=0",
           f"--temp-dir={temp_dir}", "--disable-usage-stats", "--object-store-memory=300000000",
           "--min-worker-port=0", "--max-worker-port=0",  # 0: the OS picks, so no clash with another Ray's
           *(f"--{flag}={port}" for flag, port in ports.items())]
    # Token auth on, as on a KubeRay cluster with authOptions.mode: token, with a token of its own: Ray's
    # default token file (~/.ray/auth_token) is shared with every other Ray of this user.
    token = secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")  # no Serve traffic to drain: stop at once
    log = temp_dir / "ray-start.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    head = RayHead(f"127.0.0.1:{ports['port']}", f"http://127.0.0.1:{ports['dashboard-port']}", token, temp_dir, log)
    try:
        _wait_ready(proc, head.dashboard_url, head.headers, log, timeout_s)
        yield head
    finally:
        _stop(proc, temp_dir)
