"""The served memory agent for the serve tests: one local Ray (2 CPUs) and one app for the whole session.

Starting the app costs about 25 s on 2 cores (four replicas import torch, LanceDB and MiniLM; the tiny
generator trains for 30 steps), so every test module shares it. Each test writes under its own agent ids
(`agent_id()`), so tests neither see nor disturb each other's memories. Serve and Ray are stopped as soon as
the session leaves tests/serve, and at its end whatever happened, also when the start itself failed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

import httpx
import pytest
from served_app import KEYS, Served, free_port, scenario

HERE = Path(__file__).resolve().parent


class _App:
    """Starts the app once; stops Serve and Ray when the session leaves tests/serve (see the hook below)."""

    def __init__(self) -> None:
        self.served: Optional[Served] = None
        self.up = False

    def start(self, folder: Path) -> Served:
        from memorylab.cluster import connect
        from memorylab.serve.launch import start_agent

        self.up = True  # from here on, stop() has something to clean up whatever fails next
        port = free_port()
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("RAY_ADDRESS", raising=False)  # a set RAY_ADDRESS would make connect() join that cluster
            mp.delenv("MEMORYLAB_API_KEYS", raising=False)  # it would replace the scenario's keys
            connect(num_cpus=2)
            url = start_agent(scenario(port), host="127.0.0.1", port=port, folder=str(folder), timeout_s=240)
        self.served = Served(url=url, folder=folder, keys=dict(KEYS))
        return self.served

    def stop(self) -> None:
        if not self.up:
            return
        import ray

        from memorylab.serve.launch import stop_agent

        self.up, self.served = False, None
        stop_agent()  # serve.shutdown(), errors swallowed so they never hide the failure that got us here
        ray.shutdown()


APP = _App()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    # Leaving tests/serve: stop now rather than at the end of the session, so that no later test folder
    # silently joins this Ray (with four replicas on it) instead of starting its own.
    if nextitem is None or HERE not in Path(str(nextitem.path)).resolve().parents:
        APP.stop()


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    try:
        yield APP.served or APP.start(tmp_path_factory.mktemp("served"))
    finally:
        APP.stop()


@pytest.fixture
def acme(served: Served) -> Iterator[httpx.Client]:
    with served.client("acme") as c:
        yield c


@pytest.fixture
def globex(served: Served) -> Iterator[httpx.Client]:
    with served.client("globex") as c:
        yield c
