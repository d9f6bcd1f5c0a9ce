"""Canary exposure (Carlini et al., 2019, "The Secret Sharer").

A random secret (canary) is planted in training data; afterwards the canary is ranked among
candidate secrets of the same format by log-perplexity. Exposure = log2|R| - log2 rank, where
|R| counts the canary plus the candidates: 0 = the canary looks like a random candidate
(worst rank), log2|R| = it is the model's single most likely candidate.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy.stats import rankdata


def exposure(canary_score: float, candidate_scores: Sequence[float]) -> float:
    """Exposure of a canary given its log-perplexity and those of the other candidates.

    Scores are log-perplexities: LOWER = more likely (e.g. -sum log p(secret | prefix)).
    rank = 1 + #candidates strictly lower + half the #candidates tied with the canary.
    """
    candidates = np.asarray(candidate_scores, dtype=np.float64).ravel()
    if candidates.size == 0:
        raise ValueError("candidate_scores is empty; exposure needs at least one other candidate.")
    combined = np.concatenate([[float(canary_score)], candidates])
    if not np.isfinite(combined).all():
        raise ValueError("canary and candidate scores must be finite log-perplexities.")
    # Average ranks: a tie group of size t+1 starting after `lower` values gets 1 + lower + t/2,
    # i.e. each tied candidate counts half.
    rank = float(rankdata(combined, method="average")[0])
    return math.log2(combined.size) - math.log2(rank)


def exposure_upper_bound(num_candidates: int) -> float:
    """Largest possible exposure with `num_candidates` other candidates: log2(num_candidates + 1)."""
    if num_candidates < 1:
        raise ValueError(f"num_candidates must be at least 1, got {num_candidates}.")
    return math.log2(num_candidates + 1)
