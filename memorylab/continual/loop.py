"""The continual training loop of one arm: re-warmed schedule, replay batches, probe rows, and a measurement
every eval_every steps.

A fresh AdamW (the base model's optimizer state is not kept, as when a released checkpoint is continued),
the LR set every step from the arm's schedule, gradient clipping, seeded batches. Measurements are taken at
step 0 (the base model: the "before" figures), every eval_every steps, at the last step, and around the
probes' insertion (the last step before it and the first after it), so a retention curve has its peak.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from memorylab.continual.data import ContinualData
from memorylab.continual.measure import measure
from memorylab.continual.mixing import mixed_batches
from memorylab.continual.probes import ProbePlan, pack_once
from memorylab.continual.schedules import arm_schedule
from memorylab.models.backends.hf import HFLM
from memorylab.models.trainer import collate, make_optimizer, tokenize_documents
from memorylab.progress import progress_bar
from memorylab.schema.common import EvalConfig


@dataclass
class ArmResult:
    points: list[dict[str, Any]] = field(default_factory=list)  # {"step", "lr", figures..., "probes"}
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)
    seconds: float = 0.0


def measurement_steps(steps: int, eval_every: int, probes: Optional[ProbePlan] = None) -> list[int]:
    """Where an arm is measured: 0, every eval_every steps, the end, and around the probes' insertion: before
    the first, and right after each group's last (its peak; a group inserted once peaks long before the rest)."""
    wanted = set(range(0, steps + 1, eval_every)) | {steps}
    if probes is not None:
        wanted |= {probes.first_step} | {group.steps[-1] + 1 for group in probes.groups}
    return sorted(wanted)


def train_arm(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, arm: Any, cfg: Any, data: ContinualData,
              eval_cfg: EvalConfig, seed: int, *, on_point: Optional[Callable[[dict[str, Any]], None]] = None,
              show_progress: bool = True) -> ArmResult:
    """Continue `model` in place for cfg.steps steps (`arm`: an ArmConfig, `cfg`: the ContinualConfig)."""
    torch.manual_seed(seed)
    device = next(model.parameters()).device
    lm = HFLM(model, tokenizer, batch_size=eval_cfg.batch_size, device=device)  # the same weights, measured

    def rows_of(docs: list[str]) -> list[list[int]]:
        return tokenize_documents(tokenizer, docs, cfg.seq_len)

    batches = mixed_batches(rows_of(data.new_docs), rows_of(data.old_docs), cfg.batch_size, arm.replay,
                            cfg.seq_len, seed)
    probes = data.probes
    probe_rows = {} if probes is None else {
        s: pack_once(rows_of(probes.docs_at(s)), cfg.seq_len) for g in probes.groups for s in g.steps}
    optimizer = make_optimizer(model, arm.max_lr, cfg.weight_decay)
    schedule = arm_schedule(arm, cfg.steps)
    wanted = set(measurement_steps(cfg.steps, cfg.eval_every, probes))
    result, baseline = ArmResult(), None

    def take(step: int) -> None:
        nonlocal baseline
        model.eval()
        point, scores = measure(lm, data, eval_cfg, cfg.seq_len, baseline)
        baseline = baseline or scores  # step 0's probe scores calibrate recognition from then on
        model.train()
        point = {"step": step, "lr": schedule(min(step, cfg.steps - 1)), **point}
        result.points.append(point)
        if on_point is not None:
            on_point(point)

    began = time.perf_counter()
    model.train()
    with progress_bar(total=cfg.steps, desc=f"continue {arm.name}", enabled=show_progress) as bar:
        for step in range(cfg.steps):
            if step in wanted:
                take(step)
            lr = schedule(step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            rows = next(batches) + probe_rows.get(step, [])
            batch = {k: v.to(device) for k, v in collate(rows, tokenizer.pad_token_id).items()}
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            result.losses.append(float(loss.detach()))
            result.lrs.append(lr)
            bar.update(1, loss=result.losses[-1])
    take(cfg.steps)
    model.eval()
    result.seconds = time.perf_counter() - began
    return result
