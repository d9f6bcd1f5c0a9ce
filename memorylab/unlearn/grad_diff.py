"""Gradient difference (GD): ascend on the forget set while descending on the retain set, so the model keeps
what it should know (Liu et al. 2022; a baseline of MUSE and TOFU)."""

from __future__ import annotations

from typing import Any, Literal

from memorylab.unlearn.method import RetainWeighted, UnlearnBatch
from memorylab.unlearn.spans import SpanScoped


class GradDiff(SpanScoped, RetainWeighted):
    method: Literal["grad_diff"] = "grad_diff"

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        from memorylab.unlearn.sequence import nll

        forget_nll = nll(model, batch.forget)
        stats = {"forget_nll": float(forget_nll.detach())}
        return self.with_retain_term(model, -forget_nll, stats, batch), stats
