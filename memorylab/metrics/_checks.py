"""Input checks shared by the metric modules.

Metrics sit at the end of long model runs; a NaN or an empty array that slips through yields a
silently wrong figure in a report, so every public function validates its inputs and fails with
a sentence naming the argument.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def as_logprobs(values, name: str = "logprobs", *, allow_empty: bool = False,
                allow_neg_inf: bool = False) -> np.ndarray:
    """Return `values` as a 1-D float64 array of per-token log-probs, or raise ValueError."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of per-token log-probs, got shape {arr.shape}.")
    if arr.size == 0 and not allow_empty:
        raise ValueError(f"{name} is empty; a score needs at least one token log-prob.")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN.")
    # +inf is never a log-prob; -inf (probability 0) is only meaningful where the caller says so.
    bad = np.isposinf(arr) | (np.isneginf(arr) if not allow_neg_inf else False)
    if np.any(bad):
        raise ValueError(f"{name} contains infinite values.")
    return arr


def paired_texts(a: Sequence[str], b: Sequence[str], names: tuple[str, str]) -> tuple[list[str], list[str]]:
    """Materialise two parallel text sequences, checking they are non-empty and of equal length."""
    a, b = list(a), list(b)
    if len(a) != len(b):
        raise ValueError(f"{names[0]} and {names[1]} must have the same length, got {len(a)} and {len(b)}.")
    if not a:
        raise ValueError(f"{names[0]} and {names[1]} are empty; a mean over no pairs is undefined.")
    for name, seq in zip(names, (a, b)):
        if not all(isinstance(s, str) for s in seq):
            raise TypeError(f"{name} must contain only strings.")
    return a, b
