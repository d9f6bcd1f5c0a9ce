"""SimNPO (Fan et al. 2024, "Simplicity Prevails: Rethinking Negative Preference Optimization for LLM
Unlearning"): NPO without a reference model, with the log-probability normalised by the sequence length
(as in SimPO) and a reward margin γ:
    L = -(2/β) · mean_y log σ(-(β/|y|) · log πθ(y|x) - γ)
Length normalisation stops long forget sequences from dominating. This is the paper's formula; the
authors' code subtracts β·γ instead of γ (γ inside the β scaling), which is the same family of losses.
With retain_weight > 0: + retain_weight · NLL(retain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F

from memorylab.unlearn.retain import add_retain_term, check_retain_weight
from memorylab.unlearn.sequence import sequence_logprobs


@dataclass(frozen=True)
class SimNPO:
    # β 4.5 and 0.125 are open-unlearning's SimNPO values; there 0.125 weighs the forget loss and the margin
    # (its `delta`) is 0, while here γ is the paper's margin (README: its setting is gamma 0, retain_weight 8).
    # Tiny models start from a much higher per-token NLL (several nats rather than < 1), where σ(·) is already
    # near 0 or 1 at these values; they may want a smaller β or another γ.
    beta: float = 4.5
    gamma: float = 0.125
    # None: the loop's UnlearnConfig.retain_weight decides; called outside the loop, None counts as 1.0.
    retain_weight: Optional[float] = None

    name: ClassVar[str] = "simnpo"
    needs_reference: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"unlearning method 'simnpo': beta must be > 0, got {self.beta}")
        if not abs(self.gamma) < float("inf"):
            raise ValueError(f"unlearning method 'simnpo': gamma must be a finite number, got {self.gamma}")
        check_retain_weight(self.name, self.retain_weight)

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight is None or self.retain_weight > 0

    def loss(self, model: torch.nn.Module, forget_batch: dict, retain_batch: Optional[dict],
             ref_forget_logps: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
        logp, n = sequence_logprobs(model, forget_batch)
        mean_logp = logp / n.clamp(min=1)
        loss = -(2 / self.beta) * F.logsigmoid(-self.beta * mean_logp - self.gamma).mean()
        stats = {"simnpo_loss": float(loss.detach()),
                 "forget_nll": float(-(logp.detach().sum() / n.sum().clamp(min=1)))}
        if self.uses_retain:
            loss = add_retain_term(self.name, model, loss, stats, retain_batch, self.retain_weight)
        return loss, stats
