"""Runner for `kind: unlearning`: several unlearning methods side by side, measured the MUSE six ways.

setup:  the data (world or TOFU), the shared tokenizer, a target (forget + retain) and a retrain reference
        (retain only), trained in parallel on Ray unless `reference` names them; with eval.speculative.drafter
        'train', a 1-layer drafter on the target's corpus beside them, which every measured model drafts with.
run:    one Ray task per unlearning job, all at once as resources allow: every method on the whole forget
        set; for scalability every method again on nested forget sets; for sustainability a chain of tasks per
        method, each request continuing from the previous result (ULD updates its assistant).
        Then every resulting model (and the target and retrain, on every forget set used) is measured in a
        ModelActor; a ULD model is one actor hosting target and assistant together. With `attacks:`, every
        main model (target, retrain, each method's) is then attacked and measured again (attacks.py).
report: report.json (foundation shape, one entry per model under `models`, plus `scalability` and
        `sustainability` lists), report.md and PNG plots.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Optional

import ray

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.cluster.placement import ready_group, remove_group
from memorylab.cluster.resources import actor_options, bundle, device_for, torch_threads
from memorylab.cluster.waiting import wait_all
from memorylab.evaluation import Evaluation, compare_to_retrain, evaluate
from memorylab.models.train_jobs import prepare_tokenizer
from memorylab.progress import ProgressFn, progress_bar
from memorylab.report import versions
from memorylab.runners.contract import RunContext
from memorylab.runners.eval_drafter import DRAFTER, actor_figures, actor_speculative, speculative_section, with_drafter
from memorylab.runners.unlearning.attacks import attack_figures, run_attacks
from memorylab.runners.unlearning.data import UnlearningData, unlearning_data
from memorylab.runners.unlearning.evaluation_cache import (cached, decode_evaluations, encode_evaluations,
                                                           model_fingerprint)
from memorylab.runners.unlearning.jobs import unlearn_task
from memorylab.runners.unlearning.plots import write_unlearning_report
from memorylab.runners.unlearning.progress import ProgressRelay
from memorylab.runners.unlearning.report import pick_figures
from memorylab.runners.unlearning.shared import reference_models
from memorylab.schema.unlearning import UnlearningScenario
from memorylab.unlearn.method import AssistantDecoding, UnlearnedModel, UnlearnJob

ALL = None  # the eval-set key of the whole forget set


class Measured(NamedTuple):
    """A model to measure: a saved model, or (ULD) a target decoded with its assistant."""

    path: str
    assistant: Optional[AssistantDecoding] = None


@dataclass(frozen=True)
class Job:
    label: str
    phase: str  # main | scalability | sustainability
    step: int  # forget size (scalability) or request number (sustainability); 0 for main
    eval_units: Optional[tuple[str, ...]]  # the forget units this job's model is measured on (None = all)


def _plan_and_submit(scenario: UnlearningScenario, data: UnlearningData, target: str, tokenizer_dir: Path,
                     out_dir: Path, relay: Optional[ProgressRelay] = None) -> dict[Job, Any]:
    """Submit every unlearning job; returns job -> ObjectRef of its UnlearnedModel. With a relay, each method's
    main job measures its model on the way."""
    task = ray.remote(unlearn_task).options(**actor_options(scenario.resources.unlearner), max_retries=0)
    threads = torch_threads(scenario.resources.unlearner)
    device = device_for(scenario.resources.unlearner, scenario.model.device)
    methods = {m.name: m for m in scenario.methods}
    refs: dict[Job, Any] = {}

    def submit(cfg, units, folder: Path, start=None, probe=None):
        retain = data.retain_docs + (data.wrong_answers(units) if cfg.wants_wrong_answers else [])
        spans = getattr(cfg, "scope", "documents") == "spans"  # checked at load: only with marked (world) data
        forget = data.marked_forget_docs(units) if spans else data.forget_docs(units)
        job = UnlearnJob(target, str(tokenizer_dir), forget, retain, str(folder), scenario.seed, device, probe=probe)
        return task.remote(cfg, job, threads, start)

    for label, cfg in methods.items():
        refs[Job(label, "main", 0, ALL)] = submit(cfg, data.units, out_dir / "unlearned" / label,
                                                  probe=relay.probe(label) if relay else None)
    if scenario.scalability:
        for size in scenario.scalability.sizes:
            for label in scenario.scalability.methods or list(methods):
                if size == len(data.units):  # the whole forget set: the main job already is this run
                    refs[Job(label, "scalability", size, ALL)] = refs[Job(label, "main", 0, ALL)]
                    continue
                units = tuple(data.units[:size])
                refs[Job(label, "scalability", size, units)] = submit(methods[label], list(units),
                                                                      out_dir / "scalability" / f"{label}-{size}")
    if scenario.sustainability:
        chunks = data.chunks(scenario.sustainability.requests)
        for label in scenario.sustainability.methods or list(methods):
            cfg, previous, forgotten = methods[label], None, []
            for request, chunk in enumerate(chunks, start=1):
                forgotten = forgotten + chunk
                units = forgotten if cfg.sequential_forget == "all" else chunk
                previous = submit(cfg, units, out_dir / "sustainability" / f"{label}-{request}", start=previous)
                refs[Job(label, "sustainability", request, tuple(forgotten))] = previous
    return refs


def _model_name(job: Job) -> str:
    """Jobs measured on the whole forget set from the target share the method's name (they are one run)."""
    if job.phase == "main" or (job.phase == "scalability" and job.eval_units is ALL):
        return job.label
    return f"{job.label}@{job.phase}{job.step}"


def _wait_all(refs: dict[Job, Any], desc: str, relay: Optional[ProgressRelay] = None) -> dict[Job, UnlearnedModel]:
    """Every job's result; a relay gets to pass its points on while the jobs run."""
    values = wait_all(list(refs.values()), desc, poll=relay.pump if relay is not None else None)
    return dict(zip(refs, values))


def start_lm(scenario: UnlearningScenario, model: Measured) -> tuple[Any, list[Any], Any]:
    """An LM-protocol handle on the model, the actors behind it and their placement group (or None).

    A ULD model is by default one actor hosting target and assistant (one forward each per token, one core).
    With `placement: two_actors` they are two actors in one placement group of `resources.uld_pair_strategy`
    (by default STRICT_PACK: one node, where the logits of every token go over a direct link): the assistant's
    first, then the target's, which drives the decoding with the assistant's forwards beside its own."""
    common = dict(seed=scenario.seed, batch_size=scenario.eval.batch_size)
    res = scenario.resources.model
    # (The scenario refuses eval.speculative with two actors: LockstepULD verifies no drafts.)
    uld = model.assistant
    if uld is not None and uld.placement == "two_actors":
        pg = ready_group([bundle(res), bundle(res)], scenario.resources.uld_pair_strategy)
        actors: list[Any] = []
        try:
            actors.append(create_model_actor("assistant", uld.path, scenario.model, res,
                                             placement_group=pg, bundle_index=1, **common))
            actors.insert(0, create_model_actor("target", model.path, scenario.model, res, placement_group=pg,
                                                bundle_index=0, assistant_actor=actors[0], uld_alpha=uld.alpha,
                                                uld_r=uld.r, **common))
            return RemoteLM(actors[0]), actors, pg
        except BaseException:  # nothing reserved outlives a start that failed (or was interrupted)
            for actor in actors:
                ray.kill(actor)
            remove_group(pg)
            raise
    actor = create_model_actor("target", model.path, scenario.model, res,
                               assistant_source=uld.path if uld else None, uld_alpha=uld.alpha if uld else 1.0,
                               uld_r=uld.r if uld else 0.1, speculative=actor_speculative(scenario), **common)
    return RemoteLM(actor), [actor], None


def evaluate_model(scenario: UnlearningScenario, data: UnlearningData, model: Measured, name: str,
                    unit_sets: list[Optional[tuple[str, ...]]],
                    figures: Optional[dict] = None) -> dict[Optional[tuple[str, ...]], Evaluation]:
    """Measure one model on each forget set, then free its actors (and placement group) at once; `figures`
    gets the model's speculative decoding figures (acceptance, tokens/s) under its name."""
    lm, actors, pg = start_lm(scenario, model)
    try:
        out = {}
        for units in unit_sets:
            eval_data = data.eval_data(lm, scenario.eval, units)
            out[units] = evaluate(lm, eval_data, scenario.eval, desc=f"eval {name}", show_progress=False)
        if figures is not None and scenario.eval.speculative is not None:
            figures[name] = actor_figures(actors[0])
        return out
    finally:
        for actor in actors:
            ray.kill(actor)
        if pg is not None:
            remove_group(pg)


def evaluate_reusing(scenario: UnlearningScenario, data: UnlearningData, model: Measured, name: str,
                      unit_sets: list[Optional[tuple[str, ...]]],
                      figures: Optional[dict] = None) -> dict[Optional[tuple[str, ...]], Evaluation]:
    """evaluate_model, served from `reference.evaluations` for a reference model measured before in the same
    way (the trials of a sweep all compare against the same target and retrain; a served one has no figures)."""
    folder = scenario.reference.evaluations if name in ("target", "retrain") and model.assistant is None else None
    key = {"settings": scenario.model_dump(mode="json", include={"seed", "world", "data", "eval", "model"}),
           "weights": model_fingerprint(model.path), "units": unit_sets}
    return cached(folder, key, lambda: evaluate_model(scenario, data, model, name, unit_sets, figures=figures),
                  encode_evaluations, decode_evaluations)


def _evaluate_all(scenario, data, models: dict[str, Measured], unit_sets: dict[str, list],
                  figures: Optional[dict] = None, desc: str = "evaluate") -> dict[str, dict]:
    cpus = ray.cluster_resources().get("CPU", 1)
    workers = max(1, min(len(models), int(cpus // max(scenario.resources.model.num_cpus, 0.5))))
    with progress_bar(total=len(models), desc=desc) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(evaluate_reusing, scenario, data, m, name, unit_sets[name], figures)
                   for name, m in models.items()}
        results = {}
        for name, future in futures.items():
            results[name] = future.result()
            bar.update()
    return results


def _metrics_for(evals: dict[str, dict], names: list[str], units) -> dict[str, dict[str, float]]:
    """Metrics of several models on one forget set, with PrivLeak (and TOFU forget quality) vs retrain."""
    group = {n: dict(evals[n][units].metrics) for n in ["target", "retrain", *names]}
    compare_to_retrain(group, {n: evals[n][units].raw for n in group})
    return group


def _reference_evaluations(scenario: UnlearningScenario, data: UnlearningData,
                           paths: dict[str, str]) -> dict[str, Evaluation]:
    """The target and the retrain measured on the whole forget set: what partial reports compare against."""
    evals = _evaluate_all(scenario, data, {n: Measured(paths[n]) for n in ("target", "retrain")},
                          {"target": [ALL], "retrain": [ALL]}, desc="evaluate references")
    return {name: by_units[ALL] for name, by_units in evals.items()}


def _unlearn_reporting(scenario: UnlearningScenario, evaluated: UnlearningScenario, data: UnlearningData,
                       paths: dict[str, str], tokenizer_dir: Path, out_dir: Path,
                       on_progress: ProgressFn, figures: Optional[frozenset[str]]
                       ) -> tuple[dict[Job, UnlearnedModel], dict[str, dict]]:
    """The unlearning jobs with their intermediate results passed on, and the target's and retrain's
    evaluations on the whole forget set, measured beside the unlearning (their actors start once resources
    allow) rather than after it: partial reports compare against them, and the final report reuses them."""
    relay = ProgressRelay({m.name: m.steps for m in scenario.methods}, scenario.progress_points, data,
                          scenario.eval, on_progress, figures)
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        refs = _plan_and_submit(scenario, data, paths["target"], tokenizer_dir, out_dir, relay)
        references = pool.submit(_reference_evaluations, evaluated, data, paths)
        relay.compare_with(references)
        jobs = _wait_all(refs, "unlearn", relay)
        known = {name: {ALL: ev} for name, ev in references.result().items()}
        relay.pump()  # the points that waited for the references
        return jobs, known
    finally:
        # Not waiting for the pool: a trial its scheduler stopped leaves at once.
        pool.shutdown(wait=False)
        relay.close()


def run(scenario: UnlearningScenario, out_dir: Path, context: RunContext) -> dict[str, Any]:
    """With `context.on_progress`: intermediate results (each method's model measured at `progress_points`
    steps while it unlearns), for a scheduler that stops weak sweep trials early."""
    began = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = unlearning_data(scenario, context.base_dir)
    timings["data"] = round(time.perf_counter() - t, 3)
    with ray_session(context.address or scenario.ray.address, scenario.ray.num_cpus):
        t = time.perf_counter()
        tokenizer_dir = prepare_tokenizer(scenario.model, data.tokenizer_texts, out_dir / "tokenizer")
        trained = reference_models(scenario, data, tokenizer_dir, out_dir)
        paths = {name: m["path"] for name, m in trained.items()}
        drafter = trained.get(DRAFTER)
        # Every model is measured with the drafter trained here: the scenario from now on names its folder.
        evaluated = with_drafter(scenario, drafter["path"]) if drafter else scenario
        timings["train"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        known: dict[str, dict] = {}  # evaluations already made, by model and forget set
        if context.on_progress is None:
            jobs = _wait_all(_plan_and_submit(scenario, data, paths["target"], tokenizer_dir, out_dir), "unlearn")
        else:
            jobs, known = _unlearn_reporting(scenario, evaluated, data, paths, tokenizer_dir, out_dir,
                                             context.on_progress, context.progress_figures)
        timings["unlearn"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        models = {"target": Measured(paths["target"]), "retrain": Measured(paths["retrain"])}
        unit_sets: dict[str, list] = {"target": [ALL], "retrain": [ALL]}
        for job, result in jobs.items():
            name = _model_name(job)
            models.setdefault(name, Measured(result.path, result.assistant))
            unit_sets.setdefault(name, [])
            if job.eval_units not in unit_sets[name]:
                unit_sets[name].append(job.eval_units)
            for ref in ("target", "retrain"):
                if job.eval_units not in unit_sets[ref]:
                    unit_sets[ref].append(job.eval_units)
        figures: dict[str, Any] = {}
        todo = {name: [u for u in sets if u not in known.get(name, {})] for name, sets in unit_sets.items()}
        evals = _evaluate_all(evaluated, data, {n: m for n, m in models.items() if todo[n]},
                              {n: sets for n, sets in todo.items() if sets}, figures)
        for name, done in known.items():
            evals[name] = {**done, **evals.get(name, {})}
        timings["evaluate"] = round(time.perf_counter() - t, 3)

        labels = [m.name for m in scenario.methods]
        attacked: dict[str, dict] = {}
        if scenario.attacks:
            t = time.perf_counter()
            measured = {name: models[name] for name in ("target", "retrain", *labels)}
            attacked = attack_figures(scenario, run_attacks(scenario, data, measured))
            timings["attack"] = round(time.perf_counter() - t, 3)

    main = _metrics_for(evals, labels, ALL)
    scalability, sustainability = [], []
    for job in jobs:
        if job.phase == "main":
            continue
        name = _model_name(job)
        group = _metrics_for(evals, [name], job.eval_units)
        # The target on the same forget subset: a row's forget efficacy compares like with like.
        point = {**pick_figures(group[name]), "target_knowmem_forget": group["target"].get("knowmem_forget")}
        if job.phase == "scalability":
            scalability.append({"method": job.label, "forget_size": job.step, **point})
        else:
            sustainability.append({"method": job.label, "request": job.step,
                                   "forgotten": len(job.eval_units or data.units), **point})
    timings["total"] = round(time.perf_counter() - began, 3)
    main_results = {job.label: r for job, r in jobs.items() if job.phase == "main"}
    report = {
        "scenario": scenario.name, "kind": scenario.kind, "config": scenario.model_dump(mode="json"),
        "versions": versions(), "seed": scenario.seed, "timings_s": timings, "data": data.summary,
        "models": {name: {**pick_figures(main[name]), **attacked.get(name, {})} for name in main},
        "methods": {m.name: {"method": m.method, "hparams": m.hparams(),
                             "seconds": round(main_results[m.name].seconds, 3),
                             "final_loss": main_results[m.name].final_loss} for m in scenario.methods},
        "scalability": scalability, "sustainability": sustainability,
        "samples": {name: evals[name][ALL].samples for name in main},
        "speculative": speculative_section(evaluated, drafter, {name: figures.get(name) for name in models}),
        "scenario_file": str(context.scenario_path) if context.scenario_path else None,
        "raw_config": context.raw_config,
    }
    write_unlearning_report(report, out_dir)
    return report
