"""What the serve tests share besides fixtures (conftest.py): the tiny scenario, the two tenants' keys, ids."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

# Two tenants; keys are at least 8 characters (serve/auth.py).
KEYS = {"acme": "acme-key-0123456", "globex": "globex-key-0123456"}
MAX_BODY_BYTES = 16_384  # small, so a 413 needs only a small body; >= the schema's minimum of 1024
MODEL_NAME = "serve_test"


def scenario(port: int) -> dict[str, Any]:
    """A tiny memory_agent scenario, as small as /tmp/smoke/agent_small.yaml."""
    return {
        "name": MODEL_NAME,
        "kind": "memory_agent",
        "seed": 0,
        "world": {"num_people": 12, "forget": 2, "holdout": 4, "canaries": 0},
        "model": {"tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                           "vocab_size": 400, "max_position_embeddings": 256}},
        "train": {"steps": 30, "batch_size": 8, "seq_len": 64, "warmup_steps": 3, "checkpoint_every": 1000},
        "generator": {"max_new_tokens": 8, "reader": {"steps": 8, "examples": 40, "people": 20}},
        "serve": {"host": "127.0.0.1", "port": port, "max_body_bytes": MAX_BODY_BYTES,
                  "api_keys": [{"tenant": t, "key": k} for t, k in KEYS.items()]},
        # num_cpus 0: four replicas on a 2-CPU Ray; they share the cores as threads would.
        "deployments": {name: {"num_cpus": 0} for name in ("ingress", "agent", "generator")},
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def agent_id(prefix: str = "agent") -> str:
    """A fresh agent id: a test's memories are its own."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def auth(tenant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[tenant]}"}


@dataclass
class Served:
    url: str
    folder: Path
    keys: dict[str, str]

    def client(self, tenant: str | None = "acme", timeout: float = 60.0) -> httpx.Client:
        headers = auth(tenant) if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)


