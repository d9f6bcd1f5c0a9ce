"""`kind: continual` — keep pre-training a trained model on new data, with LR re-warming, replay and
retention probes.

The base model is trained on the world's training corpus (`train:`), or taken from `reference.base`. Every
arm continues it for the same number of steps with the same batch size (the same compute) on a new cohort of
people written in a shifted text domain; arms differ only in their LR schedule and the fraction of each batch
replayed from the old corpus. Every setting that could stop a run is checked here, before anything trains.
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import Field, model_validator

from memorylab.schema.common import ScenarioBase, Strict


class ContinualReference(Strict):
    """An already-trained base model (a folder written by a previous run, with its tokenizer); None trains it
    here. It must have been trained on this scenario's world, or old-fact figures mean nothing."""

    base: Optional[str] = None


class NewDataConfig(Strict):
    """The new data: a cohort of people nobody in the world shares a name with, in another register."""

    people: int = Field(24, ge=1, description="people in the new cohort")
    domain: Literal["news", "records"] = Field("news", description="the register the new facts are written in")
    paraphrases: int = Field(2, ge=1, le=3, description="templates of the domain each new fact is rendered through")


class ContinualConfig(Strict):
    """What every arm shares, so that arms differ only in schedule and replay."""

    steps: int = Field(200, ge=1, description="optimizer steps of every arm")
    batch_size: int = Field(16, ge=1, description="rows per step; replay rows replace new rows")
    seq_len: int = Field(128, ge=8)
    eval_every: int = Field(20, ge=1, description="measure every k steps (and at step 0 and the last)")
    eval_questions: int = Field(72, ge=1, description="old and new questions asked at each measurement")
    eval_documents: int = Field(64, ge=1, description="old and new documents whose loss is measured")
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)


class ArmConfig(Strict):
    """One way of continuing: the LR schedule (re-warmed to max_lr, then re-decayed) and the replay fraction."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_-]+$", description="the arm's name in reports; unique")
    replay: float = Field(0.0, ge=0, le=1, description="fraction of each batch drawn from the old corpus")
    max_lr: float = Field(..., gt=0, description="the peak LR the schedule re-warms to")
    warmup_steps: int = Field(0, ge=0, description="linear re-warming to max_lr; 0 starts at max_lr")
    schedule: Literal["cosine", "infinite", "constant"] = "cosine"
    min_lr: float = Field(0.0, ge=0, description="the LR at the last step (cosine; infinite with anneal > 0, "
                                                 "while anneal 0 stays at the constant LR to the end)")
    cooldown: float = Field(0.3, ge=0, le=1, description="infinite: fraction of post-warm-up steps cooling "
                                                         "down from max_lr to the constant LR")
    constant_ratio: float = Field(0.5, gt=0, le=1, description="infinite: the constant LR as a fraction of max_lr")
    anneal: float = Field(0.2, ge=0, le=1, description="infinite: fraction of post-warm-up steps annealing "
                                                       "from the constant LR to min_lr at the end")

    @model_validator(mode="after")
    def _schedule_fits(self) -> "ArmConfig":
        if self.min_lr > self.max_lr:
            raise ValueError(f"min_lr ({self.min_lr}) must not exceed max_lr ({self.max_lr})")
        if self.schedule == "infinite":
            if self.cooldown + self.anneal > 1:
                raise ValueError(f"cooldown ({self.cooldown}) + anneal ({self.anneal}) must be at most 1: both are "
                                 "fractions of the steps after warm-up, and the constant phase takes the rest")
            if self.constant_ratio * self.max_lr < self.min_lr:
                raise ValueError(f"the constant LR (constant_ratio x max_lr = {self.constant_ratio * self.max_lr:g})"
                                 f" is below min_lr ({self.min_lr}); annealing would raise the LR")
        return self


class RetentionConfig(Strict):
    """Few-shot memories: probe facts inserted at a known step, each group `repeats` times, then tracked."""

    probes: int = Field(16, ge=2, description="facts per group (and unseen control facts)")
    insert_at: int = Field(60, ge=0, description="steps done before the first insertion")
    repeats: list[Annotated[int, Field(ge=1)]] = Field([1, 4], min_length=1,
                                                       description="one probe group per entry: times each is seen")
    spacing: int = Field(1, ge=1, description="steps between two insertions of the same probe")

    @model_validator(mode="after")
    def _increasing(self) -> "RetentionConfig":
        if any(b <= a for a, b in zip(self.repeats, self.repeats[1:])):
            raise ValueError(f"repeats must increase strictly, got {self.repeats}")
        return self

    @property
    def last_insertion(self) -> int:
        return self.insert_at + (self.repeats[-1] - 1) * self.spacing


class ContinualScenario(ScenarioBase):
    """Train (or load) a base model, continue it in every arm on the same new data, measure forgetting,
    adaptation and the retention of probe facts."""

    kind: Literal["continual"]
    reference: ContinualReference = ContinualReference()
    new_data: NewDataConfig = NewDataConfig()
    continual: ContinualConfig = ContinualConfig()
    arms: list[ArmConfig] = Field(..., min_length=1)
    retention: Optional[RetentionConfig] = RetentionConfig()

    @model_validator(mode="after")
    def _consistent(self) -> "ContinualScenario":
        steps = self.continual.steps
        names = [a.name for a in self.arms]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"arm names must be unique; repeated: {', '.join(dupes)}")
        if self.continual.eval_every > steps:
            raise ValueError(f"continual.eval_every ({self.continual.eval_every}) is more than continual.steps "
                             f"({steps}): nothing would be measured between the first and the last step")
        batch = self.continual.batch_size
        for arm in self.arms:
            if arm.warmup_steps >= steps:
                raise ValueError(f"arm {arm.name!r}: warmup_steps ({arm.warmup_steps}) must be fewer than "
                                 f"continual.steps ({steps})")
            if arm.schedule != "constant" and arm.warmup_steps > steps - 2:
                raise ValueError(f"arm {arm.name!r}: a {arm.schedule} schedule needs two steps after warm-up to "
                                 f"decay to min_lr; warmup_steps ({arm.warmup_steps}) leaves {steps - arm.warmup_steps}")
            rows = arm.replay * batch
            if abs(rows - round(rows)) > 1e-9 or (arm.replay > 0 and round(rows) == 0):
                raise ValueError(f"arm {arm.name!r}: replay {arm.replay} of continual.batch_size {batch} is "
                                 f"{rows:g} rows a batch; it must be a whole number of rows, at least 1 "
                                 "(else the arm would replay another fraction than it reports)")
        if self.model.is_tiny and self.continual.seq_len > self.model.tiny.max_position_embeddings:
            raise ValueError(f"continual.seq_len ({self.continual.seq_len}) is longer than the model's context "
                             f"(model.tiny.max_position_embeddings = {self.model.tiny.max_position_embeddings})")
        if self.retention is not None and self.retention.last_insertion >= steps:
            raise ValueError(f"retention probes are inserted up to step {self.retention.last_insertion} "
                             f"(insert_at + (max repeats - 1) x spacing) but the arms stop after {steps} steps; "
                             "lower retention.insert_at or raise continual.steps")
        return self
