"""Gradient difference (GD): ascend on the forget set while descending on the retain set, so the model keeps
what it should know (Liu et al. 2022; a baseline of MUSE and TOFU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from memorylab.unlearn.retain import add_retain_term, check_retain_weight
from memorylab.unlearn.sequence import nll


@dataclass(frozen=True)
class GradDiff:
    # None: the loop's UnlearnConfig.retain_weight decides; called outside the loop, None counts as 1.0.
    retain_weight: Optional[float] = None

    name: ClassVar[str] = "grad_diff"
    needs_reference: ClassVar[bool] = False
    uses_retain: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_retain_weight(self.name, self.retain_weight)

    def loss(self, model: torch.nn.Module, forget_batch: dict, retain_batch: Optional[dict],
             ref_forget_logps: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
        forget_nll = nll(model, forget_batch)
        stats = {"forget_nll": float(forget_nll.detach())}
        return add_retain_term(self.name, model, -forget_nll, stats, retain_batch, self.retain_weight), stats
