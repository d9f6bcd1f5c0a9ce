"""Corpus perplexity from per-token log-probs."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from memorylab.metrics._checks import as_logprobs


def perplexity(logprob_arrays: Sequence[np.ndarray]) -> float:
    """exp(-total log-prob / total tokens) over all texts.

    Token-weighted (every token counts once), not a mean of per-text perplexities, which would
    let a few short, badly predicted texts dominate. A log-prob of -inf gives inf.
    """
    arrays = [as_logprobs(a, f"logprob_arrays[{i}]", allow_empty=True, allow_neg_inf=True)
              for i, a in enumerate(logprob_arrays)]
    count = sum(a.size for a in arrays)
    if count == 0:
        raise ValueError("logprob_arrays holds no tokens; perplexity is undefined.")
    # fsum keeps long corpora exact-ish; averaging in log space avoids multiplying probabilities.
    nll = -math.fsum(float(a.sum()) for a in arrays) / count
    # math.exp raises OverflowError past ~709; a model that bad has, for all purposes, infinite perplexity.
    return math.inf if nll > 700 else math.exp(nll)
