"""`memorylab serve FILE --config-out OUT`: the Serve config of a memory agent, as `serve deploy` and a KubeRay
RayService's `serveConfigV2` take it (Ray Serve's ServeDeploySchema, the structure `serve build` writes).

The scenario goes inline into the application's args, with `--set` overrides applied, so the config stands
alone: the cluster needs neither the scenario file nor any particular working directory. Two things stay out:
- API keys: a config ends up in manifests and in git; the cluster's pods get MEMORYLAB_API_KEYS from a Secret
  (read by build_app where it runs, see serve/auth.py).
- per-deployment options (`deployments:`): the scenario's own `deployments:` block sets each replica's Ray
  resources; Serve lets config options win over code, so a second copy here would silently override it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Optional

import yaml

from memorylab.errors import MemorylabError
from memorylab.schema.memory_agent import MemoryAgentScenario
from memorylab.serve.launch import APP_NAME, QUIET_LOGGING

IMPORT_PATH = "memorylab.serve:build_app"
# A cluster's Service reaches Serve's proxy through the pod's address, never its loopback; a scenario's
# serve.host (loopback by default, right for a laptop) would make the served agent unreachable there.
CLUSTER_HOST = "0.0.0.0"


def serve_config(scenario: MemoryAgentScenario, raw: dict[str, Any], *, host: Optional[str] = None,
                 port: Optional[int] = None, folder: Optional[str] = None) -> dict[str, Any]:
    """The config of one application, `memorylab`, at route `/`; `raw` is the scenario's mapping as loaded
    (overrides applied), `scenario` the same validated. Checked against Ray Serve's schema before it is returned."""
    inline = copy.deepcopy(raw)
    inline.get("serve", {}).pop("api_keys", None)
    args: dict[str, Any] = {"scenario": inline, "host": host or CLUSTER_HOST}
    if folder is not None:
        args["folder"] = str(folder)
    config = {
        "proxy_location": "EveryNode",
        "http_options": {"host": host or CLUSTER_HOST, "port": port or scenario.serve.port},
        "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": IMPORT_PATH, "args": args,
                          "logging_config": dict(QUIET_LOGGING)}],
    }
    check_serve_config(config)
    return config


def check_serve_config(config: dict[str, Any]) -> None:
    """Raise MemorylabError unless Ray Serve takes `config` exactly as written: ServeDeploySchema ignores keys
    it does not know, so a misspelt option would otherwise vanish without a word."""
    from pydantic import ValidationError
    from ray.serve.schema import ServeDeploySchema

    try:
        kept = ServeDeploySchema.model_validate(config).model_dump(mode="json", exclude_unset=True)
    except ValidationError as e:
        first = e.errors()[0]
        raise MemorylabError(f"Serve config: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    dropped = _dropped(config, kept)
    if dropped:
        raise MemorylabError(f"Serve config: {dropped}: not a Ray Serve setting")


def _dropped(given: Any, kept: Any, path: str = "") -> Optional[str]:
    """The first key path present in `given` but not in `kept` (args are opaque to Serve: not compared)."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            where = f"{path}.{key}" if path else str(key)
            if key not in kept:
                return where
            if key != "args":
                found = _dropped(value, kept[key], where)
                if found:
                    return found
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (a, b) in enumerate(zip(given, kept)):
            found = _dropped(a, b, f"{path}[{i}]")
            if found:
                return found
    return None


def write_serve_config(config: dict[str, Any], out: Path, source: Path) -> None:
    """Write the config as YAML, headed by the commands that deploy it."""
    header = (f"# Ray Serve config of the memory agent in {source} (memorylab serve --config-out).\n"
              f"# Deploy: serve deploy {out} --address http://HEAD:8265, or paste it as a RayService's\n"
              f"# spec.serveConfigV2. API keys come from MEMORYLAB_API_KEYS on the cluster's pods.\n")
    out.write_text(header + yaml.safe_dump(config, sort_keys=False))
