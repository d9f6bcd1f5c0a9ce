"""The served agent reads what it is told: facts about people and values a new user invents (no name or value
from the world's pools, nothing the reader was trained on) are added over HTTP to an agent served from
scenarios/agent.yaml, and /chat is asked about each. Issue 18 asks for at least 0.75 of them answered right.

It trains the scenario's full-size generator and reader (minutes on 2 cores), so it is marked `reader` and
left out of `make test`: run it with `pytest -m reader tests/e2e/test_served_reader.py`."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
import yaml

pytestmark = [pytest.mark.e2e, pytest.mark.reader]

KEY = "reader-test-key-0123"
# What a new user might tell the agent: made-up people, places, employers (none in data/people.py's pools).
TOLD = [
    ("Orlin Vasquet", "birthplace", "Quellmoor"),
    ("Tamsin Ebberly", "employer", "Norrow Instruments"),
    ("Dace Wilmarth", "hobby", "carving driftwood"),
    ("Isolde Prynne", "occupation", "glassblower"),
    ("Bram Kettering", "award", "Harlow Medal"),
    ("Yusra Delacourt", "birthplace", "Saltmere Bay"),
    ("Fenwick Ostrander", "employer", "Blue Finch Cartography"),
    ("Maelis Quarrier", "education", "University of Dunmarrow"),
]


@pytest.fixture(scope="module")
def served_reader(tmp_path_factory):
    import ray

    from memorylab.cluster import connect
    from memorylab.serve.launch import start_agent, stop_agent
    from tests.serve.served_app import free_port

    scenario = yaml.safe_load((Path(__file__).parents[2] / "scenarios" / "agent.yaml").read_text())
    port = free_port()
    scenario["serve"] = {"host": "127.0.0.1", "port": port, "api_keys": [{"tenant": "t", "key": KEY}]}
    scenario["deployments"] = {k: {"num_cpus": 0} for k in ("ingress", "agent", "generator")}
    ray.shutdown()
    saved = {k: os.environ.pop(k) for k in ("RAY_ADDRESS", "MEMORYLAB_API_KEYS") if k in os.environ}
    connect(num_cpus=2)
    try:
        yield start_agent(scenario, port=port, folder=str(tmp_path_factory.mktemp("reader") / "agent"),
                          timeout_s=1800)
    finally:
        stop_agent()
        ray.shutdown()
        os.environ.update(saved)


def test_told_invented_facts_are_answered(served_reader):
    from memorylab.data.templates import render_fact, render_question

    client = httpx.Client(base_url=served_reader, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    right = []
    for name, attribute, value in TOLD:
        agent = name.split()[0].lower()
        added = client.post(f"/v1/agents/{agent}/memories",
                            json={"messages": [{"role": "user", "content": render_fact(attribute, 0, name, value)}]})
        assert added.status_code == 200, added.text
        asked = client.post(f"/v1/agents/{agent}/chat",
                            json={"messages": [{"role": "user", "content": render_question(attribute, name)}]})
        assert asked.status_code == 200, asked.text
        right.append(asked.json()["answer"].strip().rstrip(".").lower() == value.lower())
    assert sum(right) / len(right) >= 0.75, right


def test_the_readme_example_answers_lisbon(served_reader):
    client = httpx.Client(base_url=served_reader, headers={"Authorization": f"Bearer {KEY}"}, timeout=120)
    told = client.post("/v1/agents/a1/memories",
                       json={"messages": [{"role": "user", "content": "Ada Park was born in Lisbon."}]})
    assert told.status_code == 200, told.text
    question = {"messages": [{"role": "user", "content": "Where was Ada Park born?"}]}
    asked = client.post("/v1/agents/a1/chat", json=question)
    assert asked.status_code == 200, asked.text
    assert asked.json()["answer"].strip() == "Lisbon", asked.json()
