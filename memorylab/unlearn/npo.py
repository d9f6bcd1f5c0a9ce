"""Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From
Catastrophic Collapse to Effective Unlearning").

DPO with the forget sequences as the only, dispreferred, answers:
    L = -(2/β) · mean_y log σ(-β · (log πθ(y|x) - log π_ref(y|x)))
where log π is a sequence's summed token log-probability and π_ref the frozen model before unlearning.
Unlike gradient ascent the loss is bounded below: once πθ(y) << π_ref(y) the sigmoid saturates and the
gradient on that sequence fades, which is what slows the collapse. At θ = ref the loss is (2/β)·log 2.
With retain_weight > 0 it is NPO+RT (MUSE's NPO_GDR): + retain_weight · NLL(retain).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from memorylab.unlearn.method import RetainWeighted, UnlearnBatch
from memorylab.unlearn.spans import SpanScoped


class NPO(SpanScoped, RetainWeighted):
    method: Literal["npo"] = "npo"
    beta: float = Field(0.1, gt=0, description="NPO's inverse temperature (the paper's default); smaller is "
                                               "closer to gradient ascent")
    needs_reference: ClassVar[bool] = True

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        import torch.nn.functional as F

        from memorylab.unlearn.sequence import sequence_logprobs

        reference = batch.reference_logps()
        logp, n = sequence_logprobs(model, batch.forget)
        log_ratio = logp - reference.to(logp.device, logp.dtype)
        loss = -(2 / self.beta) * F.logsigmoid(-self.beta * log_ratio).mean()
        stats = {"npo_loss": float(loss.detach()), "log_ratio": float(log_ratio.detach().mean()),
                 "forget_nll": float(-(logp.detach().sum() / n.sum().clamp(min=1)))}
        return self.with_retain_term(model, loss, stats, batch), stats
