"""One memorylab agent as another's generator, over real HTTP: agent B (generator.source openai) asks agent A's
/v1 for its answers, its `infer: true` memory operations and its confidence policy's log-probabilities; when A
stops, B answers 502/503 within its timeout instead of hanging."""

from __future__ import annotations

import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

KEY_A, KEY_B = "upstream-key-0123", "agent-b-key-0123"
TINY = {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64, "vocab_size": 400}
TIMEOUT_S = 8.0


def agent_a(port: int) -> dict:
    return {"name": "upstream", "kind": "memory_agent", "seed": 0,
            "world": {"num_people": 12, "forget": 2, "holdout": 4, "canaries": 0},
            "model": {"tiny": TINY},
            "train": {"steps": 20, "batch_size": 8, "seq_len": 64, "warmup_steps": 2, "checkpoint_every": 1000},
            "generator": {"max_new_tokens": 8, "reader": {"steps": 0}},
            "serve": {"port": port, "api_keys": [{"tenant": "a", "key": KEY_A}]},
            "deployments": {k: {"num_cpus": 0} for k in ("ingress", "agent", "generator")}}


def agent_b(port: int) -> dict:
    return {"name": "downstream", "kind": "memory_agent", "seed": 0,
            "generator": {"source": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "upstream",
                          "api": "completions", "api_key_env": "UPSTREAM_TEST_KEY", "timeout_s": TIMEOUT_S,
                          "max_retries": 0, "max_new_tokens": 8},
            "memory": {"adaptive": {"policy": "confidence"}},
            "serve": {"port": port, "api_keys": [{"tenant": "b", "key": KEY_B}]},
            "deployments": {k: {"num_cpus": 0} for k in ("ingress", "agent", "generator")}}


@pytest.fixture
def two_agents(tmp_path, monkeypatch):
    import ray
    from ray import serve

    from memorylab.cluster import connect
    from memorylab.serve.launch import start_agent, stop_agent
    from tests.serve.served_app import free_port

    ray.shutdown()
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("MEMORYLAB_API_KEYS", raising=False)
    monkeypatch.setenv("UPSTREAM_TEST_KEY", KEY_A)
    connect(num_cpus=2)
    port = free_port()
    try:
        upstream = start_agent(agent_a(port), port=port, folder=str(tmp_path / "a"), name="a", timeout_s=240)
        downstream = start_agent(agent_b(port), port=port, folder=str(tmp_path / "b"), name="b", route_prefix="/b",
                                 timeout_s=240)
        yield upstream, downstream, lambda: serve.delete("a")
    finally:
        stop_agent()
        ray.shutdown()


def test_an_agent_answers_through_another_agents_v1(two_agents):
    upstream, downstream, stop_upstream = two_agents
    b = httpx.Client(base_url=downstream, headers={"Authorization": f"Bearer {KEY_B}"}, timeout=60)
    added = b.post("/v1/agents/ada/memories", json={"messages": [{"role": "user", "content": "Ada Park was born in Lisbon."}],
                                                   "infer": True})
    assert added.status_code == 200, added.text
    assert any("Lisbon" in m["memory"] for m in b.get("/v1/agents/ada/memories").json()["results"])
    chat = b.post("/v1/agents/ada/chat", json={"messages": [{"role": "user", "content": "Where was Ada Park born?"}]})
    assert chat.status_code == 200, chat.text
    decision = chat.json()["decision"]
    # The confidence policy read the upstream's answer-token log-probabilities: a probability, and why.
    assert decision["policy"] == "confidence" and 0 <= decision["score"] <= 1
    assert "probability" in decision["reason"] or "memories hold facts" in decision["reason"]

    stop_upstream()
    for call in (lambda: b.post("/v1/agents/ada/chat", json={"messages": [{"role": "user", "content": "Where?"}]}),
                 lambda: b.post("/v1/agents/ada/memories", json={"infer": True, "messages": [
                     {"role": "user", "content": "Bo Li works for Acme Labs."}]})):
        began = time.monotonic()
        reply = call()
        assert reply.status_code in (502, 503), reply.text
        assert "generator" in reply.json()["detail"] and "\n" not in reply.json()["detail"]
        assert time.monotonic() - began < TIMEOUT_S + 5
