"""Unlearning: make a trained model forget a forget set while keeping what a retain set covers.

One file per method (grad_ascent, grad_diff, npo, simnpo); each is a small frozen dataclass of its
hyperparameters with `name`, `needs_reference`, `uses_retain` and
`loss(model, forget_batch, retain_batch, ref_forget_logps) -> (loss, stats)`. `loop.unlearn` runs any of
them. Methods are looked up by name in METHODS, the way scenarios name them.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Protocol

import torch

from memorylab.unlearn.grad_ascent import GradAscent
from memorylab.unlearn.grad_diff import GradDiff
from memorylab.unlearn.loop import UnlearnConfig, UnlearnResult, unlearn
from memorylab.unlearn.npo import NPO
from memorylab.unlearn.simnpo import SimNPO
from memorylab.unlearn.sequence import nll, sequence_logprobs


class UnlearnMethod(Protocol):
    name: str
    needs_reference: bool  # the loop keeps a frozen copy of the model and passes its forget log-probs
    uses_retain: bool  # the loop draws retain batches (and requires retain documents)

    def loss(self, model: torch.nn.Module, forget_batch: dict, retain_batch: Optional[dict],
             ref_forget_logps: Optional[torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]: ...


METHODS: dict[str, type] = {cls.name: cls for cls in (GradAscent, GradDiff, NPO, SimNPO)}


def make_method(name: str, **hparams: Any) -> UnlearnMethod:
    """The method called `name` with these hyperparameters; a ValueError with a sentence for an unknown
    name, an unknown hyperparameter or an invalid value."""
    if name not in METHODS:
        raise ValueError(f"unknown unlearning method '{name}'; expected one of: {', '.join(METHODS)}")
    cls = METHODS[name]
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(hparams) - set(known))
    if unknown:
        expected = ", ".join(known) if known else "none"
        raise ValueError(f"unknown hyperparameter(s) {', '.join(repr(u) for u in unknown)} for unlearning "
                         f"method '{name}'; expected one of: {expected}")
    try:
        return cls(**hparams)
    except TypeError as err:  # e.g. beta="high": the comparison in __post_init__ fails with a TypeError
        raise ValueError(f"invalid hyperparameters for unlearning method '{name}': {err}") from err


__all__ = ["METHODS", "NPO", "GradAscent", "GradDiff", "SimNPO", "UnlearnConfig", "UnlearnMethod",
           "UnlearnResult", "make_method", "nll", "sequence_logprobs", "unlearn"]
