"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning"): NPO without a reference model, with the log-probability normalised by the sequence length
(as in SimPO) and a reward margin γ:
    L = -(2/β) · mean_y log σ(-(β/|y|) · log πθ(y|x) - γ)
Length normalisation stops long forget sequences from dominating. This is the paper's formula; the
authors' code subtracts β·γ instead of γ (γ inside the β scaling), which is the same family of losses.
With retain_weight > 0 (SimNPO+RT): + retain_weight · NLL(retain).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from memorylab.unlearn.method import RetainWeighted, UnlearnBatch
from memorylab.unlearn.spans import SpanScoped


class SimNPO(SpanScoped, RetainWeighted):
    method: Literal["simnpo"] = "simnpo"
    # β 4.5 and 0.125 are open-unlearning's SimNPO values; there 0.125 weighs the forget loss and the margin
    # (its `delta`) is 0, while here γ is the paper's margin (README: its setting is gamma 0, retain_weight 8).
    # Tiny models start from a much higher per-token NLL (several nats rather than < 1), where σ(·) is already
    # near 0 or 1 at these values; they may want a smaller β or another γ.
    beta: float = Field(4.5, gt=0)
    gamma: float = Field(0.125, ge=0, le=10, description="the reward margin")

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple[Any, dict[str, float]]:
        import torch.nn.functional as F

        from memorylab.unlearn.sequence import sequence_logprobs

        logp, n = sequence_logprobs(model, batch.forget)
        mean_logp = logp / n.clamp(min=1)
        loss = -(2 / self.beta) * F.logsigmoid(-self.beta * mean_logp - self.gamma).mean()
        stats = {"simnpo_loss": float(loss.detach()),
                 "forget_nll": float(-(logp.detach().sum() / n.sum().clamp(min=1)))}
        return self.with_retain_term(model, loss, stats, batch), stats
