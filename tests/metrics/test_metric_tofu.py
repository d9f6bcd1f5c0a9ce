"""TOFU truth ratio, its aggregates and forget quality, against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import ks_2samp

from memorylab.metrics import forget_quality, truth_ratio, truth_ratio_score, truth_ratios


def test_truth_ratio_hand_case():
    # Geometric mean of exp(-2), exp(-3) over exp(-1): exp(-2.5 - (-1)) = exp(-1.5).
    assert truth_ratio(-1.0, [-2.0, -3.0]) == pytest.approx(math.exp(-1.5))
    assert truth_ratio(-2.0, [-2.0]) == pytest.approx(1.0)
    # Perturbed answers more likely than the paraphrase: R > 1.
    assert truth_ratio(-3.0, [-1.0, -2.0]) == pytest.approx(math.exp(1.5))
    assert truth_ratio(np.float32(-1.0), np.array([-2.0, -3.0])) == pytest.approx(math.exp(-1.5))


def test_truth_ratio_is_ratio_of_probabilities():
    # Written out as the paper does: geometric mean of P(ã)^(1/|ã|) over P(â)^(1/|â|).
    p_para, p_pert = 0.5, [0.1, 0.4]
    expected = math.sqrt(p_pert[0] * p_pert[1]) / p_para
    assert truth_ratio(math.log(p_para), [math.log(p) for p in p_pert]) == pytest.approx(expected)


def test_truth_ratios_vectorised_matches_scalar():
    para = [-1.0, -2.0, -0.5]
    pert = [[-2.0, -3.0], [-2.0, -2.0], [-0.1, -4.0]]
    got = truth_ratios(para, pert)
    assert got == pytest.approx([truth_ratio(a, b) for a, b in zip(para, pert)])
    with pytest.raises(ValueError, match=r"shape \(n, k\)"):
        truth_ratios(para, pert[:2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "x", None, True])
def test_truth_ratio_rejects_bad_paraphrased(bad):
    with pytest.raises(ValueError, match="paraphrased_logprob_mean"):
        truth_ratio(bad, [-1.0])


@pytest.mark.parametrize("bad", [[], [float("nan")], [-1.0, float("-inf")], [[-1.0]]])
def test_truth_ratio_rejects_bad_perturbed(bad):
    with pytest.raises(ValueError, match="perturbed_logprob_means"):
        truth_ratio(-1.0, bad)


def test_truth_ratio_score_forget_and_retain_hand_cases():
    r = [0.5, 1.0, 2.0, 0.25]
    # forget: min(R, 1/R) = [0.5, 1, 0.5, 0.25] -> 2.25 / 4
    assert truth_ratio_score(r, "forget") == pytest.approx(0.5625)
    # retain: max(0, 1 - R) = [0.5, 0, 0, 0.75] -> 1.25 / 4
    for split in ("retain", "real", "real_authors", "world_facts"):
        assert truth_ratio_score(r, split) == pytest.approx(0.3125)


def test_truth_ratio_score_matches_tofu_repository_formula():
    # The TOFU repo computes curr = exp(L_pert - L_para) from average *losses* L = -logprob, i.e. 1/R, then
    # forget: mean(min(curr, 1/curr)), others: mean(max(0, 1 - 1/curr)).
    rng = np.random.default_rng(0)
    para_lp, pert_lp = -rng.uniform(0.1, 3.0, 50), -rng.uniform(0.1, 3.0, (50, 5))
    curr = np.exp((-pert_lp).mean(-1) - (-para_lp))
    r = truth_ratios(para_lp, pert_lp)
    assert truth_ratio_score(r, "forget") == pytest.approx(np.mean(np.minimum(curr, 1 / curr)))
    assert truth_ratio_score(r, "retain") == pytest.approx(np.mean(np.maximum(0, 1 - 1 / curr)))


@pytest.mark.parametrize("bad,match", [
    ([], "empty"), ([0.0, 1.0], "positive"), ([-1.0], "positive"), ([float("nan")], "NaN"),
    ([[1.0]], "1-D"),
])
def test_truth_ratio_score_rejects_bad_ratios(bad, match):
    with pytest.raises(ValueError, match=match):
        truth_ratio_score(bad, "forget")


def test_truth_ratio_score_rejects_unknown_split():
    with pytest.raises(ValueError, match="split must be one of"):
        truth_ratio_score([1.0], "holdout")


def test_forget_quality_identical_distributions_is_one():
    r = [0.3, 0.7, 1.1, 2.0]
    assert forget_quality(r, r) == 1.0


def test_forget_quality_hand_known_exact_p_value():
    # Fully separated samples of 3 and 3: D = 1, exact two-sided p = 2 / C(6, 3) = 0.1.
    assert forget_quality([0.1, 0.2, 0.3], [1.0, 2.0, 3.0]) == pytest.approx(0.1)
    # 5 and 5: 2 / C(10, 5) = 2 / 252.
    assert forget_quality([0.1, 0.2, 0.3, 0.4, 0.5], [1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(2 / 252)


def test_forget_quality_shifted_is_tiny_and_matches_scipy():
    rng = np.random.default_rng(1)
    retrain = np.exp(rng.normal(0.0, 0.3, 400))  # R around 1: a model that never saw the forget set
    unlearned = np.exp(rng.normal(-1.5, 0.3, 400))  # still prefers the truth: under-unlearned
    p = forget_quality(unlearned, retrain)
    assert p < 1e-50
    assert p == ks_2samp(unlearned, retrain).pvalue
    same = np.exp(rng.normal(0.0, 0.3, 400))
    assert forget_quality(same, retrain) > 0.01


def test_forget_quality_invariant_to_tofu_inverse_convention():
    # TOFU feeds 1/R (loss-based) to the KS test; the p-value is the same.
    rng = np.random.default_rng(2)
    a, b = np.exp(rng.normal(0.0, 0.5, 60)), np.exp(rng.normal(0.4, 0.5, 80))
    assert forget_quality(a, b) == pytest.approx(ks_2samp(1 / a, 1 / b).pvalue)


def test_forget_quality_validates_inputs():
    with pytest.raises(ValueError, match="unlearned_ratios is empty"):
        forget_quality([], [1.0])
    with pytest.raises(ValueError, match="retrain_ratios contains NaN"):
        forget_quality([1.0], [float("nan")])
