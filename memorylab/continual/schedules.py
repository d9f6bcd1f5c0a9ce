"""Learning-rate schedules for continual pre-training, as pure functions of the step.

Continuing a trained model starts a new schedule: the LR is *re-warmed* (linearly, over warmup_steps) to a
max_lr and then *re-decayed*. Two re-decays, as compared by Ibrahim et al. 2024 ("Simple and Scalable
Strategies to Continually Pre-train Large Language Models"):

- cosine: from max_lr down to min_lr, reached exactly at the last step;
- infinite: a cool-down (half cosine) from max_lr to a constant LR, a constant phase as long as training
  goes on, and a short linear anneal to min_lr at the end. The constant phase is what lets training continue
  on more data later without re-warming again.

And `constant` (max_lr after warm-up): with a low max_lr and no warm-up it is the "no re-warming" baseline,
continuing at about the LR where pre-training ended. Step s is 0-based; the LR at step s is the one its
optimizer step uses.
"""

from __future__ import annotations

import math
from typing import Any, Callable

Schedule = Callable[[int], float]


def warmup(step: int, warmup_steps: int, max_lr: float) -> float:
    """Linear re-warming: max_lr / warmup_steps at step 0, max_lr at step warmup_steps - 1 (as the trainer)."""
    return max_lr * (step + 1) / warmup_steps


def half_cosine(progress: float, start: float, end: float) -> float:
    """From `start` at progress 0 to `end` at progress 1 along half a cosine."""
    progress = min(1.0, max(0.0, progress))
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


def cosine(steps: int, max_lr: float, warmup_steps: int = 0, min_lr: float = 0.0) -> Schedule:
    decay = steps - warmup_steps  # steps after warm-up; the last of them runs at min_lr

    def lr(step: int) -> float:
        if step < warmup_steps:
            return warmup(step, warmup_steps, max_lr)
        return half_cosine((step - warmup_steps) / max(1, decay - 1), max_lr, min_lr)
    return lr


def constant(steps: int, max_lr: float, warmup_steps: int = 0) -> Schedule:
    def lr(step: int) -> float:
        return warmup(step, warmup_steps, max_lr) if step < warmup_steps else max_lr
    return lr


def infinite(steps: int, max_lr: float, warmup_steps: int = 0, min_lr: float = 0.0, cooldown: float = 0.3,
             constant_ratio: float = 0.5, anneal: float = 0.2) -> Schedule:
    """Warm-up, cool-down to constant_ratio x max_lr over `cooldown` of the post-warm-up steps, constant,
    then a linear anneal to min_lr over the last `anneal` of them (min_lr at the last step)."""
    if cooldown + anneal > 1:
        raise ValueError(f"cooldown ({cooldown}) + anneal ({anneal}) must be at most 1")
    span = steps - warmup_steps
    # Rounded together, not apart: the phases must fit the span, and an anneal asked for must reach min_lr.
    anneal_steps = max(1, round(anneal * span)) if anneal > 0 else 0
    cool_steps = min(round(cooldown * span), span - anneal_steps)
    flat = constant_ratio * max_lr
    cool_end, anneal_start = warmup_steps + cool_steps, steps - anneal_steps

    def lr(step: int) -> float:
        if step < warmup_steps:
            return warmup(step, warmup_steps, max_lr)
        if step < cool_end:
            return half_cosine((step - warmup_steps) / cool_steps, max_lr, flat)
        if step < anneal_start:
            return flat
        return flat + (min_lr - flat) * (step - anneal_start + 1) / anneal_steps
    return lr


def arm_schedule(arm: Any, steps: int) -> Schedule:
    """The schedule of a scenario arm (memorylab.schema.continual.ArmConfig) over `steps` steps."""
    if arm.schedule == "cosine":
        return cosine(steps, arm.max_lr, arm.warmup_steps, arm.min_lr)
    if arm.schedule == "constant":
        return constant(steps, arm.max_lr, arm.warmup_steps)
    if arm.schedule == "infinite":
        return infinite(steps, arm.max_lr, arm.warmup_steps, arm.min_lr, arm.cooldown, arm.constant_ratio,
                        arm.anneal)
    raise ValueError(f"unknown schedule {arm.schedule!r}; expected cosine, infinite or constant")


def lr_curve(arm: Any, steps: int) -> list[float]:
    """The LR of every step, for reports and plots."""
    schedule = arm_schedule(arm, steps)
    return [schedule(s) for s in range(steps)]
