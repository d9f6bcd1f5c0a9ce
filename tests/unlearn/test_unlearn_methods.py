"""Each method's loss against a hand computation, its sign, and the direction of one step."""

import math

import pytest
import torch

from memorylab.unlearn import METHODS, NPO, GradAscent, GradDiff, SimNPO, make_method, nll, sequence_logprobs


def _logprobs(model, batch):
    with torch.no_grad():
        return sequence_logprobs(model, batch)


def test_grad_ascent_is_minus_the_forget_nll(untrained_model, forget_batch):
    with torch.no_grad():
        loss, stats = GradAscent().loss(untrained_model, forget_batch, None, None)
        expected = nll(untrained_model, forget_batch)
    assert float(loss) < 0 and math.isclose(float(loss), -float(expected), rel_tol=1e-6)
    assert math.isclose(stats["forget_nll"], float(expected), rel_tol=1e-6)


def test_grad_diff_adds_the_weighted_retain_nll(untrained_model, forget_batch, retain_batch):
    with torch.no_grad():
        loss, stats = GradDiff(retain_weight=0.5).loss(untrained_model, forget_batch, retain_batch, None)
        f, r = float(nll(untrained_model, forget_batch)), float(nll(untrained_model, retain_batch))
    assert math.isclose(float(loss), -f + 0.5 * r, rel_tol=1e-6)
    assert stats["retain_nll"] == pytest.approx(r)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_npo_at_the_reference_is_two_over_beta_log_two(untrained_model, forget_batch, beta):
    ref, _ = _logprobs(untrained_model, forget_batch)
    with torch.no_grad():
        loss, stats = NPO(beta=beta, retain_weight=0).loss(untrained_model, forget_batch, None, ref)
    assert float(loss) == pytest.approx(2 / beta * math.log(2), rel=1e-5)
    assert stats["log_ratio"] == pytest.approx(0.0, abs=1e-5)


def test_npo_matches_its_formula_and_adds_the_retain_term(untrained_model, forget_batch, retain_batch):
    logp, _ = _logprobs(untrained_model, forget_batch)
    shifts = [-3.0, 0.5, 2.0, 7.0]  # the reference is more (or less) confident than the model, per row
    ref = logp + torch.tensor(shifts)
    beta = 0.5
    # log ratio = log π - log π_ref = -shift; log σ(x) = -log(1 + e^-x)
    expected = -(2 / beta) * sum(-math.log1p(math.exp(-(-beta * -s))) for s in shifts) / len(shifts)
    with torch.no_grad():
        loss, _ = NPO(beta=beta, retain_weight=0).loss(untrained_model, forget_batch, None, ref)
        with_rt, stats = NPO(beta=beta, retain_weight=2.0).loss(untrained_model, forget_batch, retain_batch, ref)
        retain = float(nll(untrained_model, retain_batch))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(with_rt) == pytest.approx(expected + 2.0 * retain, rel=1e-5)
    # A model already less likely than the reference on the forget set has a smaller loss.
    assert expected < 2 / beta * math.log(2)


def test_npo_without_reference_logprobs_is_an_error(untrained_model, forget_batch):
    with pytest.raises(ValueError, match="reference"):
        NPO(retain_weight=0).loss(untrained_model, forget_batch, None, None)


def test_simnpo_matches_its_formula(untrained_model, forget_batch, retain_batch):
    logp, n = _logprobs(untrained_model, forget_batch)
    beta, gamma = 4.5, 0.125
    terms = [math.log(1 / (1 + math.exp(-(-beta / float(k) * float(lp) - gamma)))) for lp, k in zip(logp, n)]
    expected = -(2 / beta) * sum(terms) / len(terms)
    with torch.no_grad():
        loss, _ = SimNPO(retain_weight=0).loss(untrained_model, forget_batch, None, None)
        with_rt, _ = SimNPO(retain_weight=1.0).loss(untrained_model, forget_batch, retain_batch, None)
        retain = float(nll(untrained_model, retain_batch))
    assert (SimNPO().beta, SimNPO().gamma) == (4.5, 0.125)  # the literature's defaults
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(with_rt) == pytest.approx(expected + retain, rel=1e-5)


@pytest.mark.parametrize("method", [GradAscent(), NPO(retain_weight=0), SimNPO(retain_weight=0, beta=1.0)])
def test_one_step_raises_the_forget_nll(trained_model, forget_batch, method):
    before = float(nll(trained_model, forget_batch).detach())
    ref = _logprobs(trained_model, forget_batch)[0]
    loss, _ = method.loss(trained_model, forget_batch, None, ref)
    loss.backward()
    with torch.no_grad():
        for p in trained_model.parameters():
            p -= 1e-3 * p.grad
        after = float(nll(trained_model, forget_batch))
    assert after > before


def test_registry_names_and_flags():
    assert sorted(METHODS) == ["grad_ascent", "grad_diff", "npo", "simnpo"]
    assert make_method("npo").needs_reference and not make_method("simnpo").needs_reference
    assert not make_method("grad_ascent").uses_retain and make_method("grad_diff").uses_retain
    assert not make_method("npo", retain_weight=0).uses_retain and make_method("npo", retain_weight=1).uses_retain
    assert make_method("simnpo", beta=2.0, gamma=0.0) == SimNPO(beta=2.0, gamma=0.0)


@pytest.mark.parametrize("name, hparams, message", [
    ("gradient_ascent", {}, "unknown unlearning method 'gradient_ascent'; expected one of: grad_ascent, "
                            "grad_diff, npo, simnpo"),
    ("npo", {"gamma": 1.0}, "unknown hyperparameter(s) 'gamma' for unlearning method 'npo'; expected one of: "
                            "beta, retain_weight"),
    ("grad_ascent", {"retain_weight": 1.0}, "unknown hyperparameter(s) 'retain_weight'"),
    ("npo", {"beta": 0}, "beta must be > 0"),
    ("simnpo", {"beta": -1.0}, "beta must be > 0"),
    ("simnpo", {"gamma": float("nan")}, "gamma must be a finite number"),
    ("grad_diff", {"retain_weight": -0.1}, "retain_weight must be >= 0"),
    ("npo", {"retain_weight": float("nan")}, "retain_weight must be >= 0"),
    ("npo", {"beta": "high"}, "invalid hyperparameters for unlearning method 'npo'"),
])
def test_registry_errors(name, hparams, message):
    with pytest.raises(ValueError) as err:
        make_method(name, **hparams)
    assert message in str(err.value)
