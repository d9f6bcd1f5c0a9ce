"""The quantization attack on a trained model: 8-bit rounding leaves what it learned as it was, 4-bit moves it."""

from __future__ import annotations

import copy

import torch

from memorylab.unlearn.attacks.quantize import quantize_model
from memorylab.unlearn.sequence import nll


def _loss(model, batch) -> float:
    with torch.no_grad():
        return float(nll(model, batch))


def test_eight_bits_change_almost_nothing_four_bits_more(trained_model, forget_batch, retain_batch):
    base = {name: _loss(trained_model, b) for name, b in (("forget", forget_batch), ("retain", retain_batch))}
    shifts = {}
    for bits in (8, 4, 2):
        model = copy.deepcopy(trained_model)
        quantize_model(model, bits, group_size=128)
        shifts[bits] = max(abs(_loss(model, b) - base[name]) / base[name]
                           for name, b in (("forget", forget_batch), ("retain", retain_batch)))
    assert shifts[8] < 0.01  # under 1% of the loss
    assert shifts[4] > 3 * shifts[8]
    assert shifts[2] > shifts[4]
