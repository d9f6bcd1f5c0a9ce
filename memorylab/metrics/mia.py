"""Membership-inference (MIA) scores and their AUC.

Convention for every score here: HIGHER = "more likely a training member". That lets all
attacks share one AUC call with members labelled 1. Inputs are per-token log-probs (1-D,
float64) of a text's tokens under the model under test.
"""
from __future__ import annotations

import math
import zlib
from typing import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from memorylab.metrics._checks import as_logprobs

# Floor on per-position variance for Min-K%++: a (numerically) one-hot next-token distribution has
# variance 0, where the z-score is 0/0. The floor turns that into 0 (if the argmax token was the
# one seen) or a very negative value (if not), which is what the limit suggests.
_MIN_VARIANCE = 1e-12


def _k_count(n: int, k: float) -> int:
    """Number of lowest tokens kept: floor(k*n) as the Min-K% and MUSE code count (int(len * ratio)), but at
    least 1 where theirs would average no token (NaN)."""
    if not (0.0 < k <= 1.0):
        raise ValueError(f"k must be a fraction in (0, 1], got {k!r}.")
    # round() first so float noise (0.29*100 = 28.999999999999996) does not lose a token.
    return max(1, math.floor(round(k * n, 9)))


def _mean_lowest(values: np.ndarray, k: float) -> float:
    return float(np.sort(values)[: _k_count(values.size, k)].mean())


def loss_score(logprobs: np.ndarray) -> float:
    """Mean token log-prob, i.e. minus the LM loss (members have lower loss)."""
    return float(as_logprobs(logprobs).mean())


def min_k_score(logprobs: np.ndarray, k: float = 0.2) -> float:
    """Min-K% Prob (Shi et al., 2024): mean of the lowest floor(k*n) (at least 1) token log-probs.

    Non-members tend to contain a few very surprising tokens; members have fewer outliers.
    """
    return _mean_lowest(as_logprobs(logprobs), k)


def min_k_plus_plus_score(logprobs: np.ndarray, means: np.ndarray, variances: np.ndarray,
                          k: float = 0.2) -> float:
    """Min-K%++ (Zhang et al., 2024): Min-K% over per-token z-scores.

    z_t = (log p(x_t) - mu_t) / sigma_t with mu_t = E_{z~p(.|x<t)}[log p(z)] and
    sigma_t^2 = Var_{z~p(.|x<t)}[log p(z)], both over the vocabulary at position t and supplied
    by the caller. Normalising by the model's own distribution rewards tokens that are local
    modes (training points sit at local maxima of the likelihood).
    """
    lp = as_logprobs(logprobs)
    mu = as_logprobs(means, "means")
    var = np.asarray(variances, dtype=np.float64)
    if mu.shape != lp.shape or var.shape != lp.shape:
        raise ValueError(
            f"logprobs, means and variances must have the same shape, got {lp.shape}, {mu.shape}, {var.shape}.")
    if not np.isfinite(var).all() or (var < 0).any():
        raise ValueError("variances must be finite and non-negative.")
    z = (lp - mu) / np.sqrt(np.maximum(var, _MIN_VARIANCE))
    return _mean_lowest(z, k)


def zlib_score(logprobs: np.ndarray, text: str) -> float:
    """zlib ratio (Carlini et al., 2021), sign-flipped so higher = member.

    Carlini's ratio is log-perplexity / zlib entropy (low = member); log-perplexity is minus the
    mean token log-prob, so the score is mean log-prob / len(zlib.compress(text)). This is the
    form used by the Min-K%, Min-K%++ and MUSE reference code. Dividing by the compressed size
    discounts texts that are likely merely because they are repetitive or simple.
    """
    lp = as_logprobs(logprobs)
    if not isinstance(text, str) or not text:
        raise ValueError("text must be a non-empty string; its zlib size is the normaliser.")
    return float(lp.mean()) / len(zlib.compress(text.encode("utf-8")))


def mia_auc(member_scores: Sequence[float], nonmember_scores: Sequence[float]) -> float:
    """ROC AUC of separating members (label 1) from non-members (label 0) by score.

    1.0 = every member scores above every non-member, 0.5 = chance, ties count half.
    """
    members = np.asarray(member_scores, dtype=np.float64).ravel()
    nonmembers = np.asarray(nonmember_scores, dtype=np.float64).ravel()
    if members.size == 0 or nonmembers.size == 0:
        raise ValueError("mia_auc needs at least one member score and one non-member score.")
    scores = np.concatenate([members, nonmembers])
    if not np.isfinite(scores).all():
        raise ValueError("MIA scores must be finite (no NaN or inf).")
    labels = np.concatenate([np.ones(members.size), np.zeros(nonmembers.size)])
    return float(roc_auc_score(labels, scores))
