"""The retain term shared by GradDiff, NPO+RT and SimNPO+RT: weight x NLL on the retain set, which keeps
the model's utility while the forget term pushes the forget set away."""

from __future__ import annotations

from typing import Optional

import torch

from memorylab.unlearn.sequence import nll


def check_retain_weight(method: str, retain_weight: Optional[float]) -> None:
    if retain_weight is not None and not retain_weight >= 0:  # `not >=` also rejects NaN
        raise ValueError(f"unlearning method '{method}': retain_weight must be >= 0, got {retain_weight}")


def add_retain_term(method: str, model: torch.nn.Module, loss: torch.Tensor, stats: dict[str, float],
                    retain_batch: Optional[dict], retain_weight: Optional[float]) -> torch.Tensor:
    """loss + weight * NLL(retain); records retain_nll in stats. A None weight counts as 1.0 (the loop
    fills it from UnlearnConfig.retain_weight before this is ever called inside a run)."""
    if retain_batch is None:
        raise ValueError(f"{method} with retain_weight > 0 needs a retain batch")
    retain_nll = nll(model, retain_batch)
    stats["retain_nll"] = float(retain_nll.detach())
    return loss + (1.0 if retain_weight is None else retain_weight) * retain_nll
