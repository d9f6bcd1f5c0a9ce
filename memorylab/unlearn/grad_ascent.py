"""Gradient ascent (GA): maximise the forget set's loss. The simplest baseline of MUSE and TOFU; it forgets
fast and, with nothing anchoring the rest of the model, soon collapses it too."""

from __future__ import annotations

from typing import Any, Literal

from memorylab.unlearn.method import LossMethod, UnlearnBatch
from memorylab.unlearn.spans import SpanScoped


class GradAscent(SpanScoped, LossMethod):
    method: Literal["grad_ascent"] = "grad_ascent"

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        from memorylab.unlearn.sequence import nll

        forget_nll = nll(model, batch.forget)
        return -forget_nll, {"forget_nll": float(forget_nll.detach())}
