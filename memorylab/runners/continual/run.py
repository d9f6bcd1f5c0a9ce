"""Runner for `kind: continual`: continue a trained model on new data, arm by arm, and measure what it
forgets, what it learns and how long few-shot memories last.

setup:  the data (the world's corpus, a new cohort in a shifted domain, probe facts), the tokenizer and the
        base model, trained once as a Ray task (train_models) unless `reference.base` names one.
run:    one Ray task per arm, all from the same base, all at once as resources allow; every arm draws the
        same new-data batches (replay rows replace part of each), so differences come from replay and the
        LR schedule only. Each arm measures itself every eval_every steps; with `on_progress` the points
        also travel to the driver as they are taken (through a Ray queue), for a sweep's early stopping.
report: report.json (`arms`, `retention`, `findings`), report.md and PNG plots.

For Ray Tune sweeps, `prepare_shared` trains the base model once for many trials (the kind's SharedSetup).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import ray

from memorylab.cluster import ray_session
from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.cluster.waiting import progress_queue, wait_all
from memorylab.continual.data import ContinualData, continual_data
from memorylab.errors import MemorylabError
from memorylab.models.train_jobs import prepare_tokenizer, train_models
from memorylab.progress import ProgressFn
from memorylab.report import versions, write_json
from memorylab.runners.continual.report import (
    arm_entry,
    arm_figures,
    findings,
    plots,
    render_markdown,
    retention_section,
)
from memorylab.runners.contract import RunContext
from memorylab.schema.continual import ArmConfig, ContinualScenario


def _train_base(scenario: ContinualScenario, old_docs: list[str], folder: Path) -> dict[str, Any]:
    """Tokenizer and base model into `folder` (reused when a finished one is there: a resumed run)."""
    tokenizer_dir = prepare_tokenizer(scenario.model, old_docs, folder / "tokenizer")
    trained = train_models({"base": old_docs}, scenario.model, scenario.train, scenario.resources.trainer,
                           tokenizer_dir, folder, scenario.seed)["base"]
    return {"path": trained["path"], "trained_here": True, "steps": trained["steps"],
            "final_loss": trained["final_loss"], "seconds": round(trained["seconds"], 3)}


def prepare_shared(scenario: ContinualScenario, folder: Path, scenario_path: Optional[Path]) -> dict[str, Any]:
    """Train the base model once into `folder`; the returned overrides make a trial reuse it."""
    folder = Path(folder).absolute()
    data = continual_data(scenario)
    with ray_session(scenario.ray.address, scenario.ray.num_cpus):  # joins a Ray that is already up
        base = _train_base(scenario, data.old_docs, folder)
    return {"reference.base": str(Path(base["path"]).absolute())}


def _arm_task(scenario: ContinualScenario, arm: ArmConfig, base_path: str, data: ContinualData, out_dir: str,
              threads: int, device: str, queue: Any) -> dict[str, Any]:
    """Runs in a Ray worker: load the base model, continue it as the arm says, save it, return the curves."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from memorylab.continual.loop import train_arm
    from memorylab.models.backends.hf import DTYPES

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path, dtype=DTYPES[scenario.model.dtype]).to(device)
    on_point = None if queue is None else (lambda point: queue.put((arm.name, point)))
    result = train_arm(model, tokenizer, arm, scenario.continual, data, scenario.eval, scenario.seed,
                       on_point=on_point)
    final = Path(out_dir) / "final"
    model.save_pretrained(final)
    tokenizer.save_pretrained(final)
    return {"path": str(final), "points": result.points, "losses": result.losses, "lrs": result.lrs,
            "seconds": result.seconds}


def _run_arms(scenario: ContinualScenario, data: ContinualData, base_path: str, out_dir: Path,
              on_progress: Optional[ProgressFn]) -> dict[str, dict[str, Any]]:
    res = scenario.resources.trainer
    task = ray.remote(_arm_task).options(**actor_options(res), max_retries=0)
    queue = progress_queue() if on_progress is not None else None
    data_ref = ray.put(data)  # shipped once, not once per arm
    refs = {a.name: task.remote(scenario, a, base_path, data_ref, str(out_dir / "arms" / a.name),
                                torch_threads(res), device_for(res, scenario.model.device), queue)
            for a in scenario.arms}
    seen: dict[str, list[dict[str, Any]]] = {}

    def forward_points() -> None:
        while not queue.empty():
            name, point = queue.get_nowait()
            seen.setdefault(name, []).append(point)
            partial = {"arms": {n: {**arm_figures(ps), "old_loss": ps[-1]["old_loss"],
                                    "new_loss": ps[-1]["new_loss"], "step": ps[-1]["step"]}
                                for n, ps in seen.items()}}
            on_progress(partial, point["step"])

    try:
        values = wait_all(list(refs.values()), "arms", poll=forward_points if queue is not None else None)
    finally:
        if queue is not None:
            queue.shutdown()
    return dict(zip(refs, values))


def _base(scenario: ContinualScenario, data: ContinualData, out_dir: Path) -> dict[str, Any]:
    if scenario.reference.base is None:
        return _train_base(scenario, data.old_docs, out_dir)
    path = Path(scenario.reference.base).expanduser()
    if not (path / "config.json").exists():
        raise MemorylabError(f"reference.base {scenario.reference.base!r} is not a model folder (no config.json); "
                             "give the final/ folder of a trained base model, or leave it out to train one")
    return {"path": str(path), "trained_here": False}


def run(scenario: ContinualScenario, out_dir: Path, context: RunContext) -> dict[str, Any]:
    began = time.perf_counter()
    timings: dict[str, float] = {}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    data = continual_data(scenario)
    timings["data"] = round(time.perf_counter() - t, 3)
    with ray_session(context.address or scenario.ray.address, scenario.ray.num_cpus):
        t = time.perf_counter()
        base = _base(scenario, data, out_dir)
        timings["base"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        results = _run_arms(scenario, data, base["path"], out_dir, context.on_progress)
        timings["arms"] = round(time.perf_counter() - t, 3)
    timings["total"] = round(time.perf_counter() - began, 3)

    arms = {a.name: arm_entry(a, results[a.name]) for a in scenario.arms}
    retention = retention_section(scenario, results)
    report = {
        "scenario": scenario.name, "kind": scenario.kind, "config": scenario.model_dump(mode="json"),
        "versions": versions(), "seed": scenario.seed, "timings_s": timings, "data": data.summary(), "base": base,
        "arms": arms, "retention": retention, "findings": findings(arms, retention),
        "scenario_file": str(context.scenario_path) if context.scenario_path else None,
        "raw_config": context.raw_config,
    }
    write_json(out_dir / "report.json", report)
    plots(report, out_dir)
    (out_dir / "report.md").write_text(render_markdown(report))
    return report
