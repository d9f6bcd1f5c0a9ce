"""Runner for `kind: unlearning` — several unlearning methods side by side, measured the MUSE six ways.

setup:  the data (world or TOFU), the shared tokenizer, a target (forget + retain) and a retrain reference
        (retain only), trained in parallel on Ray unless `reference` names them; with eval.speculative.drafter
        'train', a 1-layer drafter on the target's corpus beside them, which every measured model drafts with.
run:    one Ray task per unlearning job, all at once as resources allow: every method on the whole forget
        set; for scalability every method again on nested forget sets; for sustainability a chain of tasks per
        method, each request continuing from the previous result (ULD updates its assistant).
        Then every resulting model (and the target and retrain, on every forget set used) is measured in a
        ModelActor; a ULD model is one actor hosting target and assistant together.
report: report.json (foundation shape, one entry per model under `models`, plus `scalability` and
        `sustainability` lists), report.md and PNG plots.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import ray

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster import ray_session
from memorylab.cluster.placement import ready_group, remove_group
from memorylab.cluster.resources import actor_options, bundle, device_for, torch_threads
from memorylab.cluster.waiting import wait_all
from memorylab.evaluation import Evaluation, compare_to_retrain, evaluate
from memorylab.progress import ProgressFn, progress_bar
from memorylab.report import versions, write_json
from memorylab.runners.eval_cache import cached, model_fingerprint
from memorylab.runners.eval_drafter import (DRAFTER, actor_figures, actor_speculative, speculative_section,
                                            trains_drafter, with_drafter)
from memorylab.runners.unlearn_task import unlearn_job
from memorylab.runners.unlearning_data import UnlearningData, unlearning_data
from memorylab.runners.unlearning_progress import ProgressRelay
from memorylab.runners.unlearning_report import pick_figures, render_unlearning_markdown, unlearning_plots
from memorylab.runners.world_models import prepare_tokenizer, train_models
from memorylab.scenario import UnlearningScenario
from memorylab.schema.unlearning import ULDConfig

ALL = None  # the eval-set key of the whole forget set


@dataclass(frozen=True)
class Job:
    label: str
    phase: str  # main | scalability | sustainability
    step: int  # forget size (scalability) or request number (sustainability); 0 for main
    eval_units: Optional[tuple[str, ...]]  # the forget units this job's model is measured on (None = all)


def _reference_models(scenario: UnlearningScenario, data: UnlearningData, tokenizer_dir: Path,
                      out_dir: Path) -> dict[str, dict[str, Any]]:
    """The target and the retrain reference, {"path": ...} each: those `reference` names, the others trained
    now (with their training figures); and with eval.speculative.drafter 'train' the drafter, trained at the
    same time on the target's corpus (it must predict what the target says)."""
    refs = {"target": scenario.reference.target, "retrain": scenario.reference.retrain}
    corpora = {"target": data.target_corpus, "retrain": data.retrain_corpus}
    if trains_drafter(scenario):
        refs[DRAFTER], corpora[DRAFTER] = None, data.target_corpus
    todo = {n: c for n, c in corpora.items() if refs[n] is None}
    trained = train_models(todo, scenario.model, scenario.train, scenario.resources.trainer, tokenizer_dir,
                           out_dir, scenario.seed, drafters=[DRAFTER]) if todo else {}
    return {n: trained.get(n) or {"path": refs[n]} for n in corpora}


# For sweeps (memorylab/tune): fields that change the target and retrain models. A sweep that varies none of
# them trains both once (prepare_shared) and every trial unlearns from those, as `reference` overrides.
SHARED_PREFIXES = ("seed", "world", "model", "train", "data", "reference", "resources.trainer")


def prepare_shared(scenario: UnlearningScenario, folder: Path,
                   scenario_path: Optional[Path] = None) -> dict[str, str]:
    """Train (or reuse, when `folder` already holds them) the models every trial of a sweep starts from: target,
    retrain and (eval.speculative.drafter 'train') the drafter, which trials then name instead of training."""
    cache = {"reference.evaluations": str((folder / "evaluations").absolute())}
    given = {"target": scenario.reference.target, "retrain": scenario.reference.retrain}
    if all(given.values()) and not trains_drafter(scenario):
        return cache  # nothing to train: the trials share the evaluations of the models they name
    data = unlearning_data(scenario, scenario_path.parent if scenario_path else None)
    tokenizer_dir = prepare_tokenizer(scenario.model, data.tokenizer_texts, folder / "tokenizer")
    # Only what was trained here gets an absolute path; a given reference (a hub id, say) stays as written.
    paths = {name: given.get(name) or str(Path(m["path"]).absolute())
             for name, m in _reference_models(scenario, data, tokenizer_dir, folder).items()}
    drafter = {"eval.speculative.drafter": paths.pop(DRAFTER)} if DRAFTER in paths else {}
    return {**{f"reference.{name}": path for name, path in paths.items()}, **drafter, **cache}


def _plan_and_submit(scenario: UnlearningScenario, data: UnlearningData, target: str, tokenizer_dir: Path,
                     out_dir: Path, relay: Optional[ProgressRelay] = None) -> dict[Job, Any]:
    """Submit every unlearning job; returns job -> ObjectRef of its result. With a relay, each method's main
    job measures its model on the way."""
    task = ray.remote(unlearn_job).options(**actor_options(scenario.resources.unlearner), max_retries=0)
    threads = torch_threads(scenario.resources.unlearner)
    device = device_for(scenario.resources.unlearner, scenario.model.device)
    methods = {m.name: m for m in scenario.methods}
    refs: dict[Job, Any] = {}

    def submit(cfg, units, folder: Path, start=None, probe=None):
        retain = data.retain_docs + (data.uld_retain_extra(units) if isinstance(cfg, ULDConfig) else [])
        return task.remote(cfg.model_dump_json(), target, str(tokenizer_dir), data.forget_docs(units), retain,
                           str(folder), scenario.seed, threads, device, start, probe=probe)

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
                # ULD's assistant must keep remembering every earlier request, so it sees them all again;
                # the other methods continue from their last model on the new request only.
                units = forgotten if isinstance(cfg, ULDConfig) else chunk
                previous = submit(cfg, units, out_dir / "sustainability" / f"{label}-{request}", start=previous)
                refs[Job(label, "sustainability", request, tuple(forgotten))] = previous
    return refs


def _model_name(job: Job) -> str:
    """Jobs measured on the whole forget set from the target share the method's name (they are one run)."""
    if job.phase == "main" or (job.phase == "scalability" and job.eval_units is ALL):
        return job.label
    return f"{job.label}@{job.phase}{job.step}"


def _wait_all(refs: dict[Job, Any], desc: str, relay: Optional[ProgressRelay] = None) -> dict[Job, dict[str, Any]]:
    """Every job's result; a relay gets to pass its points on while the jobs run."""
    values = wait_all(list(refs.values()), desc, poll=relay.pump if relay is not None else None)
    return dict(zip(refs, values))


def _start_lm(scenario: UnlearningScenario, model: dict[str, Any]) -> tuple[Any, list[Any], Any]:
    """An LM-protocol handle on the model, the actors behind it and their placement group (or None).

    A ULD model is by default one actor hosting target and assistant (one forward each per token, one core).
    With `placement: two_actors` they are two actors in one placement group of `resources.uld_pair_strategy`
    (by default STRICT_PACK: one node, where the logits of every token go over a direct link): the assistant's
    first, then the target's, which drives the decoding with the assistant's forwards beside its own."""
    common = dict(seed=scenario.seed, batch_size=scenario.eval.batch_size)
    res = scenario.resources.model
    # (The scenario refuses eval.speculative with two actors: LockstepULD verifies no drafts.)
    if model.get("assistant") and model.get("placement") == "two_actors":
        pg = ready_group([bundle(res), bundle(res)], scenario.resources.uld_pair_strategy)
        actors: list[Any] = []
        try:
            actors.append(create_model_actor("assistant", model["assistant"], scenario.model, res,
                                             placement_group=pg, bundle_index=1, **common))
            actors.insert(0, create_model_actor("target", model["path"], scenario.model, res, placement_group=pg,
                                                bundle_index=0, assistant_actor=actors[0], uld_alpha=model["alpha"],
                                                uld_r=model["r"], **common))
            return RemoteLM(actors[0]), actors, pg
        except BaseException:  # nothing reserved outlives a start that failed (or was interrupted)
            for actor in actors:
                ray.kill(actor)
            remove_group(pg)
            raise
    actor = create_model_actor("target", model["path"], scenario.model, res, assistant_source=model.get("assistant"),
                               uld_alpha=model.get("alpha", 1.0), uld_r=model.get("r", 0.1),
                               speculative=actor_speculative(scenario), **common)
    return RemoteLM(actor), [actor], None


def _evaluate_model(scenario: UnlearningScenario, data: UnlearningData, model: dict[str, Any], name: str,
                    unit_sets: list[Optional[tuple[str, ...]]],
                    figures: Optional[dict] = None) -> dict[Optional[tuple[str, ...]], Evaluation]:
    """Measure one model on each forget set, then free its actors (and placement group) at once; `figures`
    gets the model's speculative decoding figures (acceptance, tokens/s) under its name."""
    lm, actors, pg = _start_lm(scenario, model)
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


def _evaluate_reusing(scenario: UnlearningScenario, data: UnlearningData, model: dict[str, Any], name: str,
                      unit_sets: list[Optional[tuple[str, ...]]],
                      figures: Optional[dict] = None) -> dict[Optional[tuple[str, ...]], Evaluation]:
    """_evaluate_model, served from `reference.evaluations` for a reference model measured before in the same
    way (the trials of a sweep all compare against the same target and retrain; a served one has no figures)."""
    folder = scenario.reference.evaluations if name in ("target", "retrain") and not model.get("assistant") else None
    key = {"settings": scenario.model_dump(mode="json", include={"seed", "world", "data", "eval", "model"}),
           "weights": model_fingerprint(model["path"]), "units": unit_sets}
    return cached(folder, key, lambda: _evaluate_model(scenario, data, model, name, unit_sets, figures=figures))


def _evaluate_all(scenario, data, models: dict[str, dict], unit_sets: dict[str, list],
                  figures: Optional[dict] = None, desc: str = "evaluate") -> dict[str, dict]:
    cpus = ray.cluster_resources().get("CPU", 1)
    workers = max(1, min(len(models), int(cpus // max(scenario.resources.model.num_cpus, 0.5))))
    with progress_bar(total=len(models), desc=desc) as bar, ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(_evaluate_reusing, scenario, data, m, name, unit_sets[name], figures)
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
    evals = _evaluate_all(scenario, data, {n: {"path": paths[n]} for n in ("target", "retrain")},
                          {"target": [ALL], "retrain": [ALL]}, desc="evaluate references")
    return {name: by_units[ALL] for name, by_units in evals.items()}


def _unlearn_reporting(scenario: UnlearningScenario, evaluated: UnlearningScenario, data: UnlearningData,
                       paths: dict[str, str], tokenizer_dir: Path, out_dir: Path,
                       on_progress: ProgressFn) -> tuple[dict[Job, dict[str, Any]], dict[str, dict]]:
    """The unlearning jobs with their intermediate results passed on, and the target's and retrain's
    evaluations on the whole forget set, measured beside the unlearning (their actors start once resources
    allow) rather than after it: partial reports compare against them, and the final report reuses them."""
    relay = ProgressRelay({m.name: m.steps for m in scenario.methods}, scenario.progress_points, data,
                          scenario.eval, on_progress)
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


def run(scenario: UnlearningScenario, out_dir: Path, *, address: Optional[str] = None,
        raw_config: Optional[dict] = None, scenario_path: Optional[Path] = None,
        on_progress: Optional[ProgressFn] = None) -> dict[str, Any]:
    """`on_progress(partial_report, point)`: intermediate results (each method's model measured at
    `progress_points` steps while it unlearns), for a scheduler that stops weak sweep trials early."""
    began = time.perf_counter()
    timings: dict[str, float] = {}
    t = time.perf_counter()
    data = unlearning_data(scenario, scenario_path.parent if scenario_path else None)
    timings["data"] = round(time.perf_counter() - t, 3)
    with ray_session(address or scenario.ray.address, scenario.ray.num_cpus):
        t = time.perf_counter()
        tokenizer_dir = prepare_tokenizer(scenario.model, data.tokenizer_texts, out_dir / "tokenizer")
        trained = _reference_models(scenario, data, tokenizer_dir, out_dir)
        paths = {name: m["path"] for name, m in trained.items()}
        drafter = trained.get(DRAFTER)
        # Every model is measured with the drafter trained here: the scenario from now on names its folder.
        evaluated = with_drafter(scenario, drafter["path"]) if drafter else scenario
        timings["train"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        known: dict[str, dict] = {}  # evaluations already made, by model and forget set
        if on_progress is None:
            jobs = _wait_all(_plan_and_submit(scenario, data, paths["target"], tokenizer_dir, out_dir), "unlearn")
        else:
            jobs, known = _unlearn_reporting(scenario, evaluated, data, paths, tokenizer_dir, out_dir, on_progress)
        timings["unlearn"] = round(time.perf_counter() - t, 3)

        t = time.perf_counter()
        models = {"target": {"path": paths["target"]}, "retrain": {"path": paths["retrain"]}}
        unit_sets: dict[str, list] = {"target": [ALL], "retrain": [ALL]}
        for job, result in jobs.items():
            name = _model_name(job)
            models.setdefault(name, result)
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
        "models": {name: pick_figures(main[name]) for name in main},
        "methods": {m.name: {"method": m.method, "hparams": m.model_dump(exclude={"method", "label"}),
                             "seconds": round(main_results[m.name]["seconds"], 3),
                             "final_loss": main_results[m.name]["final_loss"]} for m in scenario.methods},
        "scalability": scalability, "sustainability": sustainability,
        "samples": {name: evals[name][ALL].samples for name in main},
        "speculative": speculative_section(evaluated, drafter, {name: figures.get(name) for name in models}),
        "scenario_file": str(scenario_path) if scenario_path else None, "raw_config": raw_config,
    }
    write_json(out_dir / "report.json", report)
    unlearning_plots(report, out_dir)
    (out_dir / "report.md").write_text(render_unlearning_markdown(report))
    return report
