"""`kind: memory_agent_eval`: evaluate a served memory agent, and compare retrievers on the same data.

serve_eval: start the agent of `agent` (or use `url`), feed every session turn by turn over HTTP, ask the
probes (search, and /chat when `answer`), and report evidence recall@k, answer-in-context, exact match / F1,
memories stored and add/search latency, per competency and overall, plus how often adaptive retrieval
retrieved for known vs new people. compare: in-process, the same turns as one memory each, recall@k of
dense, BM25, hybrid and hybrid + each reranker.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from pathlib import Path
from typing import Any, Optional

from memorylab.cluster import ray_session
from memorylab.data.agent_sessions import LOCOMO_COMPETENCY, AgentDataset, locomo_sessions, synthetic_sessions
from memorylab.errors import MemorylabError
from memorylab.report import versions, write_json
from memorylab.runners.contract import RunContext
from memorylab.memory.reorder import reorder_for_context
from memorylab.metrics.answers import answer_scores
from memorylab.metrics.judge import PROMPTS, STYLES, Judge
from memorylab.runners.memory_agent_eval.probes import adaptive_figures, feed, latency_figures, probe_all, summarize
from memorylab.runners.memory_agent_eval.report import render
from memorylab.schema.memory_agent import MemoryAgentScenario
from memorylab.schema.memory_agent_eval import MemoryAgentEvalScenario
from memorylab.serve.auth import ENV_VAR
from memorylab.serve.prompts import answer_with

CLIENT_KEY_VAR = "MEMORYLAB_API_KEY"  # the key the runner uses against a server given by `url`


def agent_scenario(scenario: MemoryAgentEvalScenario, scenario_path: Optional[Path]) -> MemoryAgentScenario:
    """The agent the evaluation names (a file relative to the evaluation's, or inline)."""
    from memorylab.scenario_loader import load_named

    agent, _, path = load_named(scenario.agent, scenario_path)
    if agent.kind != "memory_agent":
        raise MemorylabError(f"agent: {path} is a '{agent.kind}' scenario; expected kind memory_agent")
    return agent


def datasets(scenario: MemoryAgentEvalScenario, agent: MemoryAgentScenario, scenario_path: Optional[Path]):
    """(served datasets, LoCoMo conversations or None): the synthetic set lives on the agent's world."""
    data = scenario.dataset
    if data.source == "synthetic":
        from memorylab.data import build_world

        world = build_world(agent.world, seed=agent.seed)
        s = scenario.synthetic
        return [synthetic_sessions(world, s.new_people, s.known_people, s.facts_per_person, s.conflicts,
                                   s.filler_turns, scenario.seed, updates_known=s.updates_known,
                                   never_told=s.never_told)], None
    from memorylab.data.locomo import load_locomo

    path = None if data.path is None else Path(data.path).expanduser()
    if path is not None and not path.is_absolute() and scenario_path is not None:
        path = Path(scenario_path).parent / path  # as the loader checked it: relative to the scenario file
    conversations = load_locomo(path)[: data.conversations]
    if data.questions:
        conversations = [c.__class__(**{**c.__dict__, "probes": c.probes[: data.questions]}) for c in conversations]
    return [locomo_sessions(c) for c in conversations], conversations


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_eval(scenario: MemoryAgentEvalScenario, agent: MemoryAgentScenario, sets: list[AgentDataset],
               out_dir: Path, judge: Optional[Any] = None) -> dict[str, Any]:
    from memorylab.serve.client import AgentClient
    from memorylab.serve.launch import start_agent, stop_agent

    started = scenario.url is None
    if started:
        key = secrets.token_hex(16)
        # The runner's own tenant key; set through the environment so it also overrides the file's keys.
        previous = os.environ.get(ENV_VAR)
        os.environ[ENV_VAR] = f"{scenario.tenant}:{key}"
        # A fresh store every run (the trained generator beside it is kept): the figures must not depend on
        # what an earlier or interrupted run left in memory.
        shutil.rmtree(out_dir / "agent" / "memory", ignore_errors=True)
        try:
            url = start_agent(agent, port=free_port(), folder=str(out_dir / "agent"))
        finally:
            if previous is None:
                del os.environ[ENV_VAR]
            else:
                os.environ[ENV_VAR] = previous
        suffix = ""
    else:
        url, key = scenario.url.rstrip("/"), os.environ.get(CLIENT_KEY_VAR, "")
        if not key:
            raise MemorylabError(f"url is set: put the API key of tenant '{scenario.tenant}' in ${CLIENT_KEY_VAR}")
        suffix = "-" + secrets.token_hex(4)  # a shared server may hold earlier runs' agents
    rows, stored, turns = [], 0, 0
    abstain = agent.generator.reader.abstain
    try:
        with AgentClient(url, key) as client:
            for ds in sets:
                agent_id = f"{scenario.name}.{ds.name}{suffix}"
                written = feed(client, agent_id, ds)
                rows += [dict(r, dataset=ds.name) for r in probe_all(client, agent_id, ds, written, scenario.top_k,
                                                                     scenario.answer, abstain, judge)]
                stored += len(client.memories(agent_id))
                turns += len(ds.turns)
            latency = latency_figures(client.latencies_ms)
    finally:
        if started:
            stop_agent()
    out = {"competencies": summarize(rows), "store": {"memories": stored, "turns": turns}, "latency_ms": latency,
           "adaptive": {"policy": agent.memory.adaptive.policy, **adaptive_figures(rows)}, "probes": rows, "url": url,
           "abstain": abstain}
    if judge is not None:
        out["judge"] = judge_summary(scenario, judge)
    if any(r["category"] for r in rows):
        out["categories"] = summarize(rows, key="category")
    return out


def judge_summary(scenario: MemoryAgentEvalScenario, judge: Judge) -> dict[str, Any]:
    """Which judge graded, with which prompts (files in the repository), and how often it failed."""
    return {"base_url": scenario.judge.base_url, "model": scenario.judge.model,
            "prompts": {style: str(PROMPTS / f"{style}.txt") for style in STYLES},
            "failures": judge.failures, "last_failure": judge.last_failure or None}


def compare(scenario: MemoryAgentEvalScenario, agent: MemoryAgentScenario, conversations, out_dir: Path) -> dict:
    """Recall@k per retriever and reranker, in-process on LoCoMo conversations."""
    from memorylab.memory.rerank import make_reranker
    from memorylab.memory.retrieval_eval import evaluate_retrievers

    if conversations is None:
        raise MemorylabError("compare: needs dataset.source locomo (the synthetic set is evaluated by serve_eval)")
    cfg = scenario.compare
    rerankers, skipped = {}, {}
    for name in cfg.rerankers:
        if name == "none":
            continue
        if name == "cross_encoder" and not cfg.cross_encoder_path:
            skipped[name] = "no cross-encoder model is available offline; set compare.cross_encoder_path"
            continue
        generator = _local_generator(agent, out_dir) if name == "listwise_first" else None
        rerankers[name] = make_reranker(name, generator=generator, model_path=cfg.cross_encoder_path,
                                        window=agent.memory.reranker.window, stride=agent.memory.reranker.stride)
    reader = LocomoReader(agent, _answer_generator(agent, out_dir)) if scenario.answer else None
    from memorylab.memory.embedder import Embedder

    embedder = Embedder(quantize=agent.memory.retrieval.quantize_embedder)  # what the agent serves with
    results = evaluate_retrievers(conversations, embedder=embedder, rerankers=rerankers, modes=cfg.retrievers,
                                  candidates=cfg.candidates,
                                  read=reader, read_top_k=agent.memory.retrieval.top_k)
    out = {"retrievers": results, "skipped_rerankers": skipped}
    if reader is not None:
        out["answers"] = {"by_category": summarize(reader.rows, key="category"), "probes": reader.rows,
                          "top_k": agent.memory.retrieval.top_k}
    return out


class LocomoReader:
    """Answers each LoCoMo question from its hybrid top memories with the agent's generator, as the served agent
    does (serve/prompts.answer_with), and scores it by LoCoMo's rules (metrics/answers.py)."""

    def __init__(self, agent: MemoryAgentScenario, generator: Any) -> None:
        self.agent, self.generator = agent, generator
        self.rows: list[dict[str, Any]] = []

    def __call__(self, probe: Any, records: list) -> None:
        reorder = self.agent.memory.retrieval.reorder
        done = answer_with(self.generator, reorder_for_context(records) if reorder else records, probe.question,
                           self.agent.generator, reorder)
        category = probe.category_name
        self.rows.append({"question": probe.question, "category": category,
                          "competency": LOCOMO_COMPETENCY[category], "answers": [probe.answer],
                          "evidence": list(probe.evidence), "prediction": done.text,
                          "context_tokens": float(done.context_tokens),
                          **answer_scores(done.text, [probe.answer], category, self.agent.generator.reader.abstain)})


def _answer_generator(agent: MemoryAgentScenario, out_dir: Path) -> Any:
    """The agent's generator in this process: its OpenAI-compatible server's client, or the model itself."""
    if agent.generator.source == "openai":
        from memorylab.models.openai_generator import OpenAIGenerator

        return OpenAIGenerator.from_config(agent.generator)
    return _local_generator(agent, out_dir)


def _local_generator(agent: MemoryAgentScenario, out_dir: Path) -> Any:
    from memorylab.models.registry import load_lm
    from memorylab.serve.generator_model import prepare_generator

    folder = out_dir / "agent"
    folder.mkdir(parents=True, exist_ok=True)
    return load_lm(prepare_generator(agent, folder), backend=agent.model.backend, dtype=agent.model.dtype,
                   device="cpu")


def run(scenario: MemoryAgentEvalScenario, out_dir: Path, context: RunContext) -> dict[str, Any]:
    began = time.perf_counter()
    scenario_path = context.scenario_path
    agent = agent_scenario(scenario, scenario_path)
    sets, conversations = datasets(scenario, agent, scenario_path)
    report: dict[str, Any] = {"name": scenario.name, "kind": scenario.kind, "description": scenario.description,
                              "seed": scenario.seed, "config": scenario.model_dump(mode="json"),
                              "agent": agent.model_dump(mode="json"), "versions": versions(),
                              "scenario_file": str(scenario_path) if scenario_path else None,
                              "raw_config": context.raw_config}
    judge = Judge.from_config(scenario.judge) if scenario.judge is not None else None
    with ray_session(context.address or agent.ray.address, agent.ray.num_cpus):
        if scenario.compare is not None:
            report.update(compare(scenario, agent, conversations, out_dir))
        if scenario.serve_eval:
            report.update(serve_eval(scenario, agent, sets, out_dir, judge))
    report["timings_s"] = {"total": round(time.perf_counter() - began, 3)}
    write_json(out_dir / "report.json", report)
    (out_dir / "report.md").write_text(render(report, out_dir))
    return report
