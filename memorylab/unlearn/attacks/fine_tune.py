"""Plain fine-tuning (next-token NLL) through the unlearning loop: what a relearning attack trains with.

Not an unlearning method (it is not in the registry): the loop's seeded streams, optimizer and clipping make
a relearning attack on every model the same few steps on the same rows."""

from __future__ import annotations

from typing import Any, Literal

from memorylab.unlearn.method import LossMethod, UnlearnBatch


class FineTune(LossMethod):
    method: Literal["fine_tune"] = "fine_tune"

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        from memorylab.unlearn.sequence import nll

        forget_nll = nll(model, batch.forget)
        return forget_nll, {"nll": float(forget_nll.detach())}
