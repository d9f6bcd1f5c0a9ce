"""Intermediate results of an unlearning run, for a sweep scheduler (ASHA) that stops weak trials early.

In the unlearning task: a `Probe` measures the method's model at `progress_points` evenly spaced steps with
the same `evaluate` as the final measurement, in the task's own process (the model is in memory and the task
already holds its CPU or GPU: no save, no load, no extra actor waiting for resources the task holds), and
puts the figures on a Ray queue. It measures in eval mode under a forked random state and hands the model back
as it found it, so the final model is the one a run without probes gives.

In the runner: a `ProgressRelay` collects the points; once every method has its i-th point and the target's
and the retrain's figures are known, it hands `on_progress` a partial report shaped like the final one
(`models.<label>.<metric>`, PrivLeak and forget quality against the retrain), as step i.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable, Optional

from memorylab.cluster.waiting import progress_queue
from memorylab.evaluation import compare_to_retrain, evaluate
from memorylab.progress import ProgressFn
from memorylab.runners.unlearning.report import pick_figures
from memorylab.schema.common import EvalConfig

RAW_KEPT = ("truth_ratios_forget",)  # the raw figures a comparison needs (TOFU forget quality)


def probe_steps(steps: int, points: int) -> tuple[int, ...]:
    """`points` evenly spaced steps strictly inside (0, steps): the last step is the final measurement's (fewer
    when a short run has fewer distinct steps)."""
    return tuple(sorted({round(steps * i / (points + 1)) for i in range(1, points + 1)} - {0, steps}))


@dataclass(frozen=True)
class Probe:
    """What an unlearning task needs to measure its model on the way (plain data plus handles: Ray ships it)."""

    queue: Any  # ray.util.queue.Queue
    label: str
    steps: tuple[int, ...]
    data: Any  # the run's UnlearningData, or an ObjectRef of it
    eval: EvalConfig
    figures: Optional[frozenset[str]] = None  # what to measure (evaluate's `only`); None: everything

    def hook(self, build_lm: Callable[[int], Any], module: Any, device: str) -> Callable[[int], None]:
        """The loop's on_step: at a probe step, measure the LM `build_lm(batch_size)` makes of the model being
        trained (`module`, put back in the mode it was in) and queue the figures."""
        import ray
        import torch

        data = ray.get(self.data) if isinstance(self.data, ray.ObjectRef) else self.data
        eval_data: list[Any] = []  # built on first use: it depends on the tokenizer only

        def on_step(step: int) -> None:
            if step not in self.steps:
                return
            training = module.training
            try:
                with torch.random.fork_rng(devices=[device] if device.startswith("cuda") else []):
                    lm = build_lm(self.eval.batch_size)
                    if not eval_data:
                        eval_data.append(data.eval_data(lm, self.eval, None))
                    ev = evaluate(lm, eval_data[0], self.eval, show_progress=False, only=self.figures)
            finally:
                module.train(training)
            raw = {k: ev.raw[k] for k in RAW_KEPT if k in ev.raw}
            self.queue.put((self.label, self.steps.index(step), step, dict(ev.metrics), raw))

        return on_step


def measured_eval(cfg: EvalConfig) -> EvalConfig:
    """The evaluation settings of a probe: speculative decoding only changes speed (greedy output is the same),
    and a probe measures a model with no drafter beside it."""
    return cfg.model_copy(update={"speculative": None})


class ProgressRelay:
    """Runner side: the queue the probes write to, and the partial reports made of what they wrote."""

    def __init__(self, methods: dict[str, int], points: int, data: Any, eval_cfg: EvalConfig,
                 on_progress: ProgressFn, figures: Optional[frozenset[str]] = None) -> None:
        """`methods`: label -> unlearning steps of each main job. `figures`: the ones on_progress's reader needs
        (a sweep's objectives); the probes measure only those (None: everything)."""
        import ray

        self.queue = progress_queue()
        self._data_ref = ray.put(data)
        self._eval = measured_eval(eval_cfg)
        self._steps = {label: probe_steps(steps, points) for label, steps in methods.items()}
        self._count = min(len(s) for s in self._steps.values())
        self._points: dict[str, dict[int, tuple[int, dict, dict]]] = {label: {} for label in methods}
        self._sent = 0
        self._references: Optional[dict[str, tuple[dict, dict]]] = None
        self._pending_references: Optional[Future] = None
        self._on_progress = on_progress
        self._figures = figures

    def probe(self, label: str) -> Optional[Probe]:
        steps = self._steps[label][: self._count]
        return Probe(self.queue, label, steps, self._data_ref, self._eval, self._figures) if steps else None

    def compare_with(self, references: Future) -> None:
        """The future evaluations {name: Evaluation} of the target and the retrain: every partial report
        compares against them, so points wait for them."""
        self._pending_references = references

    def pump(self) -> None:
        """Take what the probes queued; pass on each point every method has reached, in order. (Called from
        the thread that runs the run, since on_progress may report to Tune.)"""
        future = self._pending_references
        if self._references is None and future is not None and future.done() and future.exception() is None:
            self._references = {n: (dict(e.metrics), {k: e.raw[k] for k in RAW_KEPT if k in e.raw})
                                for n, e in future.result().items()}
        while not self.queue.empty():
            label, index, step, metrics, raw = self.queue.get_nowait()
            self._points[label][index] = (step, metrics, raw)
        while (self._references is not None and self._sent < self._count
               and all(self._sent in points for points in self._points.values())):
            self._on_progress(self._partial(self._sent), self._sent + 1)
            self._sent += 1

    def _partial(self, index: int) -> dict[str, Any]:
        at = {label: points[index] for label, points in self._points.items()}
        metrics = {name: dict(m) for name, (m, _) in self._references.items()}
        raws = {name: r for name, (_, r) in self._references.items()}
        for label, (_, m, r) in at.items():
            metrics[label], raws[label] = dict(m), r
        compare_to_retrain(metrics, raws)
        return {"models": {name: pick_figures(m) for name, m in metrics.items()},
                "progress": {"point": index + 1, "of": self._count + 1,
                             "steps": {label: step for label, (step, _, _) in at.items()}}}

    def close(self) -> None:
        self.queue.shutdown()
