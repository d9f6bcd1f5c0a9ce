"""The agent-eval scenario end to end at reduced size: a served agent is told about new people over HTTP,
then probed; and the in-process retriever comparison on a small LoCoMo-format file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from memorylab.runners import RunContext, run_scenario
from memorylab.scenario_loader import load_scenario

pytestmark = pytest.mark.e2e

AGENT = {
    "name": "agent_e2e", "kind": "memory_agent", "seed": 0,
    "world": {"num_people": 12, "forget": 2, "holdout": 4, "canaries": 0},
    "model": {"tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                       "vocab_size": 400}},
    "train": {"steps": 20, "batch_size": 8, "seq_len": 64, "warmup_steps": 2, "checkpoint_every": 1000},
    "generator": {"max_new_tokens": 6, "reader": {"steps": 8, "examples": 40, "people": 20}},
    # confidence: the policy asks the Generator deployment from the agent's replica (its first call reads the
    # model's context length, which must not block the replica's event loop).
    "memory": {"adaptive": {"policy": "confidence"}},
    "deployments": {k: {"num_cpus": 0} for k in ("ingress", "agent", "generator")},
    "ray": {"num_cpus": 2},
    "serve": {"api_keys": [{"tenant": "ops", "key": "never-in-a-report-0123"}]},
}


@pytest.fixture(autouse=True)
def own_ray():
    """Each test starts (through the runner) and stops its own Ray, as `memorylab run` does: Serve on a Ray
    that earlier test modules shaped (their actors, their environment) is not what a user runs."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def test_served_agent_eval(tmp_path):
    write(tmp_path / "agent.yaml", AGENT)
    path = write(tmp_path / "eval.yaml", {
        "name": "agent_eval_e2e", "kind": "memory_agent_eval", "agent": "agent.yaml",
        "synthetic": {"new_people": 3, "known_people": 2, "facts_per_person": 4, "conflicts": 2, "filler_turns": 2,
                      "updates_known": 1, "never_told": 2},
        "top_k": 10, "answer": True})
    report = run_scenario(load_scenario(path), tmp_path / "run", RunContext(scenario_path=path))
    groups = report["competencies"]
    assert set(groups) >= {"accurate_retrieval", "test_time_learning", "long_range_understanding",
                           "conflict_resolution", "knowledge_update_known", "never_told", "overall"}
    # Every answer is scored (a tiny reader trained for 8 steps: the figures exist, their values are not the
    # point here; tests/e2e/test_served_reader.py holds a trained reader to its numbers).
    for figure in ("exact_match", "f1", "abstention", "context_tokens"):
        assert 0 <= groups["overall"][figure] < float("inf"), figure
    assert groups["overall"]["context_tokens"] > 0
    # Nobody mentioned them: there is nothing to find, only an abstention to score.
    assert "answer_in_context" not in groups["never_told"] and 0 <= groups["never_told"]["abstention"] <= 1
    # A handful of memories per agent: hybrid retrieval at k=10 finds every stated fact.
    assert groups["accurate_retrieval"]["recall@10"] == 1.0
    assert groups["overall"]["answer_in_context"] >= 0.9
    # Each changed fact was UPDATEd in place: the new value is found, the replaced one is gone.
    assert groups["conflict_resolution"]["answer_in_context"] == 1.0
    assert groups["conflict_resolution"]["stale_in_context"] == 0.0
    # Small talk is not stored; every fact is.
    assert 0 < report["store"]["memories"] < report["store"]["turns"]
    assert {"add", "search", "chat"} <= set(report["latency_ms"])
    assert 0 <= report["adaptive"]["retrieve_rate_new"] <= 1  # the confidence policy decided every question
    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert saved["competencies"] == groups
    assert (tmp_path / "run" / "competencies.png").stat().st_size > 0
    assert (tmp_path / "run" / "answers.png").stat().st_size > 0
    text = (tmp_path / "run" / "report.md").read_text()
    assert "per competency" in text and "exact_match" in text and "abstention" in text
    # The agent's settings are in the report, its API keys are not (nor in any other file the report wrote).
    assert saved["agent"]["serve"]["api_keys"] == [{"tenant": "ops", "key": "***"}]
    for written in (tmp_path / "run").iterdir():
        if written.is_file():
            assert b"never-in-a-report-0123" not in written.read_bytes(), written


def _tiny_locomo(path: Path) -> Path:
    """Two sessions in LoCoMo's layout; the evidence of each question is one turn."""
    session_1 = [{"speaker": "Ann", "dia_id": "D1:1", "text": "I adopted a grey cat named Pixel last week."},
                 {"speaker": "Bob", "dia_id": "D1:2", "text": "Nice! I started learning the cello."},
                 {"speaker": "Ann", "dia_id": "D1:3", "text": "My sister moved to Lisbon for a new job."}]
    session_2 = [{"speaker": "Bob", "dia_id": "D2:1", "text": "My cello teacher is called Mrs. Odell."},
                 {"speaker": "Ann", "dia_id": "D2:2", "text": "Pixel knocked a vase off the shelf today."},
                 {"speaker": "Bob", "dia_id": "D2:3", "text": "I will run a marathon in Porto in October."}]
    qa = [{"question": "What is the name of Ann's cat?", "answer": "Pixel", "evidence": ["D1:1"], "category": 4},
          {"question": "Where did Ann's sister move?", "answer": "Lisbon", "evidence": ["D1:3"], "category": 4},
          {"question": "Who teaches Bob the cello?", "answer": "Mrs. Odell", "evidence": ["D2:1"], "category": 1},
          {"question": "Where is Bob's marathon?", "answer": "Porto", "evidence": ["D2:3"], "category": 2}]
    data = [{"sample_id": "tiny-1", "qa": qa, "conversation": {
        "speaker_a": "Ann", "speaker_b": "Bob", "session_1": session_1, "session_1_date_time": "1:56 pm on 8 May, 2023",
        "session_2": session_2, "session_2_date_time": "2:10 pm on 9 May, 2023"}}]
    path.write_text(json.dumps(data))
    return path


def test_retriever_comparison_on_locomo_format(tmp_path):
    write(tmp_path / "agent.yaml", AGENT)
    _tiny_locomo(tmp_path / "tiny_locomo.json")
    path = write(tmp_path / "compare.yaml", {
        "name": "compare_e2e", "kind": "memory_agent_eval", "agent": "agent.yaml", "serve_eval": False,
        "dataset": {"source": "locomo", "path": "tiny_locomo.json"}, "answer": True,
        "compare": {"retrievers": ["dense", "bm25", "hybrid"], "rerankers": ["listwise_first", "cross_encoder"],
                    "candidates": 6}})
    report = run_scenario(load_scenario(path), tmp_path / "run", RunContext(scenario_path=path))
    retrievers = report["retrievers"]
    assert set(retrievers) == {"dense", "bm25", "hybrid", "hybrid+listwise_first"}
    assert retrievers["hybrid"]["recall@5"] == 1.0  # six memories, one distinct evidence turn each
    assert retrievers["hybrid"]["by_category"]["single-hop"]["questions"] == 2
    assert "cross_encoder" in report["skipped_rerankers"]
    answers = report["answers"]["by_category"]  # every question answered by the agent's generator
    assert set(answers) == {"single-hop", "multi-hop", "temporal", "overall"}
    assert answers["single-hop"]["probes"] == 2 and 0 <= answers["single-hop"]["f1"] <= 1
    assert all("exact_match" in row and "prediction" in row for row in report["answers"]["probes"])
    text = (tmp_path / "run" / "report.md").read_text()
    assert "Reranker listwise_first" in text and "Answers from the hybrid top" in text and "Not run here: cross_encoder" in text
