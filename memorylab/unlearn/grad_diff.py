"""Gradient difference (GD): ascend on the forget set while descending on the retain set, so the model keeps
what it should know (Liu et al. 2022; a baseline of MUSE and TOFU)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from memorylab.unlearn.sequence import nll


def check_retain_weight(method: str, retain_weight: Optional[float]) -> None:
    if retain_weight is not None and not retain_weight >= 0:  # `not >=` also rejects NaN
        raise ValueError(f"unlearning method '{method}': retain_weight must be >= 0, got {retain_weight}")


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
        if retain_batch is None:
            raise ValueError("grad_diff needs a retain batch")
        weight = 1.0 if self.retain_weight is None else self.retain_weight
        forget_nll, retain_nll = nll(model, forget_batch), nll(model, retain_batch)
        loss = -forget_nll + weight * retain_nll
        return loss, {"forget_nll": float(forget_nll.detach()), "retain_nll": float(retain_nll.detach())}
