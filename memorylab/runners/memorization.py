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
from typing import Any, Optional

import ray

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.data import build_world
from memorylab.evaluation import Evaluation, add_privleak, evaluate_memorization
from memorylab.runners.eval_drafter import (DRAFTER, actor_figures, actor_speculative, speculative_markdown,
                                            speculative_section, trains_drafter, with_drafter)
from memorylab.report import bar_chart, loss_chart, markdown_table, metrics_table, versions, write_json
from memorylab.runners.memorization_fields import METRICS
from memorylab.runners.world_models import corpus, prepare_tokenizer, tokenizer_texts, train_models
from memorylab.scenario import MemorizationScenario

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


def run(scenario: MemorizationScenario, out_dir: Path, *, address: Optional[str] = None,
        raw_config: Optional[dict] = None, scenario_path: Optional[Path] = None) -> dict[str, Any]:
    began = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        timings[name] = round(time.perf_counter() - since, 3)
        return time.perf_counter()

    t = time.perf_counter()
    world = build_world(scenario.world, seed=scenario.seed)
    t = lap("world", t)
    with ray_session(address or scenario.ray.address, scenario.ray.num_cpus):
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
        "scenario_file": str(scenario_path) if scenario_path else None,
        "raw_config": raw_config,
    }
    write_json(out_dir / "report.json", report)
    bar_chart(report["models"], [("verbmem_forget", "knowmem_forget", "knowmem_retain", "mia_auc_forget_holdout"),
                                 ("canary_exposure_mean",), ("ppl_holdout",)],
              out_dir / "memorization.png", f"{scenario.name}: target vs retrain")
    loss_chart({n: r["losses"] for n, r in trained.items()}, out_dir / "training_loss.png", "training loss")
    (out_dir / "report.md").write_text(render_markdown(report))
    return report


def effects(models: dict[str, dict[str, float]]) -> list[str]:
    """The quickstart's claims, each stated with its numbers, so the report says whether they hold."""
    t, r = models["target"], models["retrain"]
    lines = []
    gap = t["verbmem_forget"] - r["verbmem_forget"]
    ok = t["verbmem_forget"] >= 0.5 and gap >= 0.3
    lines.append(f"- Verbatim memorization: target VerbMem {t['verbmem_forget']:.3f} vs retrain "
                 f"{r['verbmem_forget']:.3f} (gap {gap:+.3f}) — {'memorized' if ok else 'NOT clearly memorized'}.")
    gap = t["canary_exposure_mean"] - r["canary_exposure_mean"]
    lines.append(f"- Canaries: mean exposure {t['canary_exposure_mean']:.2f} bits vs {r['canary_exposure_mean']:.2f} "
                 f"(gap {gap:+.2f} bits) — {'exposed' if gap >= 3 else 'NOT clearly exposed'}.")
    gap = t["knowmem_retain"] - r["knowmem_retain"]
    lines.append(f"- Retained knowledge: KnowMem on retain {t['knowmem_retain']:.3f} vs {r['knowmem_retain']:.3f} "
                 f"(difference {gap:+.3f}): both models were trained on the retain people.")
    lines.append(f"- Membership: Min-K% AUC forget vs holdout {t['mia_auc_forget_holdout']:.3f} vs "
                 f"{r['mia_auc_forget_holdout']:.3f}; PrivLeak of the target {t['privleak']:+.1f}% "
                 "(0 means indistinguishable from never having seen the forget set; MUSE's sign: negative "
                 "while the forget set is still told apart).")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    models, timings = report["models"], report["timings_s"]
    parts = [
        f"# {report['scenario']} — memorization report", "",
        f"Seed {report['seed']}; world: {report['world']['people']} ; "
        f"trained with {report['config']['train']['steps']} steps.", "",
        "## Findings", "", *effects(models), "",
        "## Metrics", "", metrics_table(models, METRICS), "",
        "![metrics](memorization.png)", "", "![training loss](training_loss.png)", "",
        "## Training", "",
        markdown_table(["model", "documents", "parameters", "steps", "final loss"],
                       [[n, t["corpus_documents"], t["parameters"], t["steps"], t["final_loss"]]
                        for n, t in report["training"].items()]), "",
        *speculative_markdown(report.get("speculative")),
        "## Sample verbatim continuations (forget biographies)", "",
    ]
    for name, samples in report["samples"].items():
        rows = [[s["prompt"], s["truth"], s["output"]] for s in samples["verbmem_forget"]]
        parts += [f"**{name}**", "", markdown_table(["prefix", "true continuation", "greedy output"], rows), ""]
    parts += ["## Timings (s)", "", markdown_table(["stage", "seconds"], list(timings.items())), "",
              "## Versions", "", markdown_table(["package", "version"], list(report["versions"].items())), ""]
    return "\n".join(parts)
