"""Start and stop the served agent on a Ray that is already connected (cluster/connect.py): used by
`memorylab serve`, the agent-eval runner, the serving benchmark and the tests."""

from __future__ import annotations

import time
from typing import Any, Optional, Union

from memorylab.errors import MemorylabError
from memorylab.serve.app import BuildArgs, build_app

APP_NAME = "memorylab"
# No per-request access log: Serve writes (and flushes) one line per request in the proxy and in every replica a
# request passes, which on a small machine costs more CPU than the search itself. Errors still log. The Serve
# config for a cluster (config_out.py) carries the same.
QUIET_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(f"{url}/healthz", timeout=5.0)
            if reply.status_code == 200:
                return
            last = f"HTTP {reply.status_code}"
        except httpx.HTTPError as e:
            last = type(e).__name__
        time.sleep(0.25)
    raise MemorylabError(f"the served agent at {url} did not become healthy within {timeout_s:.0f} s ({last})")


def start_agent(scenario: Union[str, dict, Any], *, host: str = "127.0.0.1", port: int = 8000,
                folder: Optional[str] = None, overrides: list[str] = (), timeout_s: float = 300.0,
                name: str = APP_NAME, route_prefix: str = "/") -> str:
    """Deploy the app (Serve's HTTP proxy on host:port) and return its base URL once /healthz answers. Several
    agents share one Serve by `name` and `route_prefix` (an agent whose generator is another agent's /v1)."""
    from ray import serve

    if not isinstance(scenario, (str, dict)):
        from memorylab.hidden_keys import REVEAL_KEYS

        scenario = scenario.model_dump(mode="json", context=REVEAL_KEYS)  # the one dump that keeps the keys
    serve.start(http_options={"host": host, "port": port}, logging_config=dict(QUIET_LOGGING))
    app = build_app(BuildArgs(scenario=scenario, folder=folder, overrides=list(overrides), host=host))
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False, logging_config=dict(QUIET_LOGGING))
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    wait_healthy(url, timeout_s)
    return url


def stop_agent() -> None:
    import ray
    from ray import serve

    # Without a connection there is nothing to stop, and serve.shutdown() would call ray.init() to look: a
    # local Ray after a failed join, or minutes of retries against the unreachable address itself.
    if not ray.is_initialized():
        return
    try:
        serve.shutdown()
    except Exception:  # noqa: BLE001 - stopping must not mask the error that made us stop
        pass
