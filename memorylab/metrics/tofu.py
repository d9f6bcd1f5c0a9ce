"""TOFU truth ratio and forget quality (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs").

Inputs are length-normalised log-probs, i.e. the mean per-token log-prob of an answer given its question,
log P(a|q)^(1/|a|) (the negative of the "average loss" that the TOFU repository logs).

Truth ratio (paper, eq. 1), for one question q with paraphrased answer â and perturbed answers ã_1..ã_k:

    R_truth = ( prod_i P(ã_i|q)^(1/|ã_i|) )^(1/k) / P(â|q)^(1/|â|)
            = exp( mean_i lp(ã_i) - lp(â) )

R < 1: the model prefers the (paraphrased) truth; R ≈ 1: it cannot tell truth from perturbation, which is
what a model that never saw the fact shows; R > 1: it prefers the wrong answers.

Convention note. The TOFU repository (locuslab/tofu, aggregate_eval_stat.py) works with average losses
L = -lp and computes `curr_stat_1 = exp(L_perturbed_mean - L_paraphrased) = 1 / R_truth`. Its aggregates,
rewritten in terms of R_truth as defined above (which is what this module returns):

- forget set (get_model_utility, 'Truth Ratio Forget'): mean(min(curr, 1/curr)) = mean(min(R, 1/R));
- retain, real authors, world facts ('Truth Ratio Retain', ..., part of Model Utility):
  mean(max(0, 1 - 1/curr)) = mean(max(0, 1 - R));
- forget quality (get_forget_quality): KS test p-value between the per-question `curr_stat_1` values of
  the unlearned and of the retrained model on the forget set. The two-sample KS statistic is invariant
  under a strictly monotone map applied to both samples (x -> 1/x on positives), so feeding R_truth
  instead of 1/R_truth gives the same statistic and p-value.
"""
from __future__ import annotations

import math
from numbers import Real
from typing import Sequence

import numpy as np
from scipy.stats import ks_2samp

from memorylab.metrics._checks import as_logprobs

FORGET_SPLITS = ("forget",)
UTILITY_SPLITS = ("retain", "real", "real_authors", "world_facts")


def truth_ratio(paraphrased_logprob_mean: float, perturbed_logprob_means: Sequence[float]) -> float:
    """R_truth = exp(mean(perturbed_logprob_means) - paraphrased_logprob_mean), from length-normalised log-probs."""
    v = paraphrased_logprob_mean
    # numpy scalars register as numbers.Real; bools are Real too but are never a log-prob.
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, Real) or not math.isfinite(v):
        raise ValueError(f"paraphrased_logprob_mean must be a finite number (a mean log-prob), got {v!r}.")
    perturbed = as_logprobs(perturbed_logprob_means, "perturbed_logprob_means")
    # Mean in log space = log of the geometric mean of the length-normalised probabilities.
    return float(np.exp(perturbed.mean() - float(v)))


def truth_ratios(paraphrased_logprob_means: Sequence[float], perturbed_logprob_means) -> np.ndarray:
    """Vectorised truth_ratio: shape (n,) paraphrased means and (n, k) perturbed means -> (n,) ratios."""
    para = as_logprobs(paraphrased_logprob_means, "paraphrased_logprob_means")
    pert = np.asarray(perturbed_logprob_means, dtype=np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0] or pert.shape[1] == 0:
        raise ValueError(
            f"perturbed_logprob_means must have shape (n, k) with n = {para.shape[0]} questions and k >= 1 "
            f"perturbed answers, got shape {pert.shape}."
        )
    as_logprobs(pert.ravel(), "perturbed_logprob_means")  # NaN / inf checks
    return np.exp(pert.mean(axis=1) - para)


def _as_ratios(ratios, name: str) -> np.ndarray:
    arr = np.asarray(ratios, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of truth ratios, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; it needs at least one truth ratio.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be positive (a ratio of probabilities), got min {arr.min()!r}.")
    return arr


def truth_ratio_score(ratios: Sequence[float], split: str) -> float:
    """TOFU's aggregate of per-question truth ratios R: forget -> mean(min(R, 1/R)); else mean(max(0, 1 - R)).

    `split` is "forget", or one of "retain", "real", "real_authors", "world_facts" (the model-utility sets).
    Both scores are in [0, 1]. For the forget set 1 means R = 1 (no preference between truth and
    perturbation, as after perfect unlearning); for the utility sets higher means the truth is preferred.
    """
    r = _as_ratios(ratios, "ratios")
    if split in FORGET_SPLITS:
        return float(np.mean(np.minimum(r, 1.0 / r)))
    if split in UTILITY_SPLITS:
        return float(np.mean(np.maximum(0.0, 1.0 - r)))
    raise ValueError(f"split must be one of {', '.join(FORGET_SPLITS + UTILITY_SPLITS)}, got {split!r}.")


def forget_quality(unlearned_ratios: Sequence[float], retrain_ratios: Sequence[float]) -> float:
    """Two-sample KS-test p-value between the forget-set truth ratios of the unlearned and retrained models.

    High (close to 1) = indistinguishable from the retrained model; TOFU plots it on a log scale, and
    values below 0.05 mean the unlearned model is still significantly different.
    """
    a = _as_ratios(unlearned_ratios, "unlearned_ratios")
    b = _as_ratios(retrain_ratios, "retrain_ratios")
    return float(ks_2samp(a, b).pvalue)
