"""Runner for `kind: memorization` — the quickstart: what did a model memorize of its training data?

setup: build the world and the shared tokenizer.
run:   train a target on forget + retain and a retrain reference on retain only, in parallel on Ray (with
       eval.speculative.drafter 'train', a 1-layer drafter on the target's corpus too); load each into a
       ModelActor (its drafter beside it) and measure both with the same metrics, in parallel.
report: report.json, report.md and PNG charts in the run folder.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ray

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.data import build_world
from memorylab.data.corpus import corpus, tokenizer_texts
from memorylab.evaluation import Evaluation, add_privleak, evaluate_memorization
from memorylab.models.train_jobs import prepare_tokenizer, train_models
from memorylab.report import versions, write_json
from memorylab.runners.contract import RunContext
from memorylab.runners.eval_drafter import (
    DRAFTER,
    actor_figures,
    actor_speculative,
    speculative_section,
    trains_drafter,
    with_drafter,
)
from memorylab.runners.memorization.report import METRICS, render_markdown, write_plots
from memorylab.schema.memorization import MemorizationScenario

CORPORA = {"target": ("forget", "retain"), "retrain": ("retain",)}


def evaluate_model(scenario: MemorizationScenario, world, path: str, name: str) -> tuple[Evaluation, dict]:
    """Load one model into a ModelActor, measure it, and free the actor's resources at once: on a Ray with
    fewer CPUs than actors, the next model's actor then starts instead of waiting forever."""
    actor = create_model_actor("target", path, scenario.model, scenario.resources.model,
                               seed=scenario.seed, batch_size=scenario.eval.batch_size,
                               speculative=actor_speculative(scenario))
    try:
        info = ray.get(actor.info.remote())
        evaluation = evaluate_memorization(RemoteLM(actor), world, scenario.eval, f"eval {name}")
        return evaluation, {**info, "speculative_figures": actor_figures(actor)}
    finally:
        ray.kill(actor)


def evaluate_models(scenario: MemorizationScenario, world, paths: dict[str, str]) -> tuple[dict[str, Evaluation], dict]:
    """All models at once, each in its own actor (each evaluation mostly waits on its actor)."""
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        futures = {name: pool.submit(evaluate_model, scenario, world, path, name) for name, path in paths.items()}
        results = {name: f.result() for name, f in futures.items()}
    return {n: r[0] for n, r in results.items()}, {n: r[1] for n, r in results.items()}


def run(scenario: MemorizationScenario, out_dir: Path, context: RunContext) -> dict[str, Any]:
    began = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 3)
        return time.perf_counter()

    t = time.perf_counter()
    world = build_world(scenario.world, seed=scenario.seed)
    t = lap("world", t)
    with ray_session(context.address or scenario.ray.address, scenario.ray.num_cpus):
        t = lap("ray_start", t)
        tokenizer_dir = prepare_tokenizer(scenario.model, tokenizer_texts(world), out_dir / "tokenizer")
        t = lap("tokenizer", t)
        corpora = {name: corpus(world, splits) for name, splits in CORPORA.items()}
        # The drafter learns what the target learned, so it trains on the target's corpus, at the same time.
        extra = {DRAFTER: corpora["target"]} if trains_drafter(scenario) else {}
        trained = train_models({**corpora, **extra}, scenario.model, scenario.train, scenario.resources.trainer,
                               tokenizer_dir, out_dir, scenario.seed, drafters=list(extra))
        drafter = trained.pop(DRAFTER, None)
        evaluated = with_drafter(scenario, drafter["path"]) if drafter else scenario
        t = lap("train", t)
        evaluations, infos = evaluate_models(evaluated, world, {n: r["path"] for n, r in trained.items()})
        t = lap("evaluate", t)
    models = {name: dict(ev.metrics) for name, ev in evaluations.items()}
    add_privleak(models)
    for name in models:
        timings[f"train_{name}"] = round(trained[name]["seconds"], 3)
    timings["total"] = round(time.perf_counter() - began, 3)

    report = {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "config": scenario.model_dump(mode="json"),
        "versions": versions(),
        "seed": scenario.seed,
        "timings_s": timings,
        "models": {name: {k: models[name][k] for k in METRICS} for name in models},
        "world": world.summary(),
        "training": {name: {k: r[k] for k in ("path", "steps", "final_loss", "resumed_from")}
                     | {"parameters": infos[name]["parameters"], "corpus_documents": len(corpora[name])}
                     for name, r in trained.items()},
        "samples": {name: ev.samples for name, ev in evaluations.items()},
        "speculative": speculative_section(evaluated, drafter,
                                           {n: info["speculative_figures"] for n, info in infos.items()}),
        "scenario_file": str(context.scenario_path) if context.scenario_path else None,
        "raw_config": context.raw_config,
    }
    write_json(out_dir / "report.json", report)
    write_plots(report, {n: r["losses"] for n, r in trained.items()}, out_dir)
    (out_dir / "report.md").write_text(render_markdown(report))
    return report
