"""Gradient ascent (GA): maximise the forget set's loss. The simplest baseline of MUSE and TOFU; it forgets
fast and, with nothing anchoring the rest of the model, soon collapses it too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch

from memorylab.unlearn.sequence import nll


@dataclass(frozen=True)
class GradAscent:
    name: ClassVar[str] = "grad_ascent"
    needs_reference: ClassVar[bool] = False
    uses_retain: ClassVar[bool] = False

    def loss(self, model: torch.nn.Module, forget_batch: dict, retain_batch: Optional[dict] = None,
             ref_forget_logps: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, dict[str, float]]:
        forget_nll = nll(model, forget_batch)
        return -forget_nll, {"forget_nll": float(forget_nll.detach())}
