"""Negative Preference Optimization (Zhang et al. 2024, "Negative Preference Optimization: From
Catastrophic Collapse to Effective Unlearning").

DPO with the forget sequences as the only, dispreferred, answers:
    L = -(2/β) · mean_y log σ(-β · (log πθ(y|x) - log π_ref(y|x)))
where log π is a sequence's summed token log-probability and π_ref the frozen model before unlearning.
Unlike gradient ascent the loss is bounded below: once πθ(y) << π_ref(y) the sigmoid saturates and the
gradient on that sequence fades, which is what slows the collapse. At θ = ref the loss is (2/β)·log 2.
With retain_weight > 0 it is NPO+RT: + retain_weight · NLL(retain).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
import torch.nn.functional as F

from memorylab.unlearn.retain import add_retain_term, check_retain_weight
from memorylab.unlearn.sequence import sequence_logprobs


@dataclass(frozen=True)
class NPO:
    beta: float = 0.1  # the paper's default; smaller β is closer to gradient ascent
    # None: the loop's UnlearnConfig.retain_weight decides; called outside the loop, None counts as 1.0.
    retain_weight: Optional[float] = None

    name: ClassVar[str] = "npo"
    needs_reference: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if not self.beta > 0:
            raise ValueError(f"unlearning method 'npo': beta must be > 0, got {self.beta}")
        check_retain_weight(self.name, self.retain_weight)

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight is None or self.retain_weight > 0

    def loss(self, model: torch.nn.Module, forget_batch: dict, retain_batch: Optional[dict],
             ref_forget_logps: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        if ref_forget_logps is None:
            raise ValueError("npo needs the reference model's forget log-probabilities")
        logp, n = sequence_logprobs(model, forget_batch)
        log_ratio = logp - ref_forget_logps.to(logp.device, logp.dtype)
        loss = -(2 / self.beta) * F.logsigmoid(-self.beta * log_ratio).mean()
        stats = {"npo_loss": float(loss.detach()), "log_ratio": float(log_ratio.detach().mean()),
                 "forget_nll": float(-(logp.detach().sum() / n.sum().clamp(min=1)))}
        if self.uses_retain:
            loss = add_retain_term(self.name, model, loss, stats, retain_batch, self.retain_weight)
        return loss, stats
