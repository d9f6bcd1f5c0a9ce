"""Dropout with its mask drawn as random bytes, eight from each 64-bit draw.

On CPU, torch's dropout draws one random number per element (bernoulli_), and for the reader head's small
layers that draw was the largest single cost of a training step (13% of it on one core, more than the
attention). Eight mask bytes from one 64-bit draw make the draw eight times cheaper; the price is a
probability rounded to a multiple of 1/256 (0.1 drops 26/256 = 10.2%). Off CPU, torch's own dropout runs:
accelerators draw their masks in parallel and gain nothing here.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

LEVELS = 256  # a byte's values: the resolution of the drop probability


class ByteDropout(nn.Module):
    """nn.Dropout's contract (zero each element with probability p while training, scale the rest by
    1 / (1 - p), identity in eval), with p rounded to a multiple of 1/256 on CPU."""

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p
        self.cut = round(p * LEVELS)  # a byte below the cut drops its element

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.cut == 0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, training=True)
        n = x.numel()
        # random_(-2**63, None) draws over the whole int64 range: every byte of every draw is uniform.
        bits = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-2 ** 63, None)
        keep = bits.view(torch.uint8)[:n].view(x.shape) >= self.cut
        return x * keep * (LEVELS / (LEVELS - self.cut))

    def extra_repr(self) -> str:
        return f"p={self.p} (as {self.cut}/{LEVELS})"
