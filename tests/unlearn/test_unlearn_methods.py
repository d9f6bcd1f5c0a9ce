"""Each method's loss against a hand computation, its sign, and the direction of one step."""

import math

import pytest
import torch

from memorylab.unlearn.grad_ascent import GradAscent
from memorylab.unlearn.grad_diff import GradDiff
from memorylab.unlearn.method import UnlearnBatch
from memorylab.unlearn.npo import NPO
from memorylab.unlearn.registry import METHODS, method_settings
from memorylab.unlearn.sequence import nll, sequence_logprobs
from memorylab.unlearn.simnpo import SimNPO


def _logprobs(model, batch):
    with torch.no_grad():
        return sequence_logprobs(model, batch)


def test_grad_ascent_is_minus_the_forget_nll(untrained_model, forget_batch):
    with torch.no_grad():
        loss, stats = GradAscent().loss(untrained_model, UnlearnBatch(forget_batch))
        expected = nll(untrained_model, forget_batch)
    assert float(loss) < 0 and math.isclose(float(loss), -float(expected), rel_tol=1e-6)
    assert math.isclose(stats["forget_nll"], float(expected), rel_tol=1e-6)


def test_grad_diff_adds_the_weighted_retain_nll(untrained_model, forget_batch, retain_batch):
    with torch.no_grad():
        loss, stats = GradDiff(retain_weight=0.5).loss(untrained_model, UnlearnBatch(forget_batch, retain_batch))
        f, r = float(nll(untrained_model, forget_batch)), float(nll(untrained_model, retain_batch))
    assert math.isclose(float(loss), -f + 0.5 * r, rel_tol=1e-6)
    assert stats["retain_nll"] == pytest.approx(r)


@pytest.mark.parametrize("beta", [0.1, 1.0])
def test_npo_at_the_reference_is_two_over_beta_log_two(untrained_model, forget_batch, beta):
    ref, _ = _logprobs(untrained_model, forget_batch)
    with torch.no_grad():
        loss, stats = NPO(beta=beta, retain_weight=0).loss(untrained_model, UnlearnBatch(forget_batch, forget_reference_logps=ref))
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
        loss, _ = NPO(beta=beta, retain_weight=0).loss(untrained_model, UnlearnBatch(forget_batch, forget_reference_logps=ref))
        with_rt, stats = NPO(beta=beta, retain_weight=2.0).loss(
            untrained_model, UnlearnBatch(forget_batch, retain_batch, forget_reference_logps=ref))
        retain = float(nll(untrained_model, retain_batch))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(with_rt) == pytest.approx(expected + 2.0 * retain, rel=1e-5)
    # A model already less likely than the reference on the forget set has a smaller loss.
    assert expected < 2 / beta * math.log(2)


def test_npo_without_reference_logprobs_is_an_error(untrained_model, forget_batch):
    with pytest.raises(ValueError, match="reference"):
        NPO(retain_weight=0).loss(untrained_model, UnlearnBatch(forget_batch))


def test_simnpo_matches_its_formula(untrained_model, forget_batch, retain_batch):
    logp, n = _logprobs(untrained_model, forget_batch)
    beta, gamma = 4.5, 0.125
    terms = [math.log(1 / (1 + math.exp(-(-beta / float(k) * float(lp) - gamma)))) for lp, k in zip(logp, n)]
    expected = -(2 / beta) * sum(terms) / len(terms)
    with torch.no_grad():
        loss, _ = SimNPO(retain_weight=0).loss(untrained_model, UnlearnBatch(forget_batch))
        with_rt, _ = SimNPO(retain_weight=1.0).loss(untrained_model, UnlearnBatch(forget_batch, retain_batch))
        retain = float(nll(untrained_model, retain_batch))
    assert (SimNPO().beta, SimNPO().gamma) == (4.5, 0.125)  # the literature's defaults
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(with_rt) == pytest.approx(expected + retain, rel=1e-5)


@pytest.mark.parametrize("method", [GradAscent(), NPO(retain_weight=0), SimNPO(retain_weight=0, beta=1.0)])
def test_one_step_raises_the_forget_nll(trained_model, forget_batch, method):
    before = float(nll(trained_model, forget_batch).detach())
    ref = _logprobs(trained_model, forget_batch)[0]
    loss, _ = method.loss(trained_model, UnlearnBatch(forget_batch, forget_reference_logps=ref))
    loss.backward()
    with torch.no_grad():
        for p in trained_model.parameters():
            p -= 1e-3 * p.grad
        after = float(nll(trained_model, forget_batch))
    assert after > before


def test_registry_names_and_flags():
    assert sorted(METHODS) == ["grad_ascent", "grad_diff", "npo", "rmu", "simnpo", "uld"]
    assert method_settings("rmu").needs_reference and not method_settings("rmu", retain_weight=0).uses_retain
    assert method_settings("npo").needs_reference and not method_settings("simnpo").needs_reference
    assert not method_settings("grad_ascent").uses_retain and method_settings("grad_diff").uses_retain
    assert not method_settings("npo", retain_weight=0).uses_retain and method_settings("npo").uses_retain
    assert method_settings("simnpo", beta=2.0, gamma=0.0) == SimNPO(beta=2.0, gamma=0.0)
    assert method_settings("uld").sequential_forget == "all" and method_settings("npo").sequential_forget == "new"


@pytest.mark.parametrize("name, settings, message", [
    ("gradient_ascent", {}, "unknown unlearning method 'gradient_ascent'; expected one of: grad_ascent, "
                            "grad_diff, npo, simnpo, rmu, uld"),
    ("rmu", {"steering_coeff": 0}, "steering_coeff\n  Input should be greater than 0"),
    ("npo", {"gamma": 1.0}, "gamma\n  Extra inputs are not permitted"),
    ("grad_ascent", {"retain_weight": 1.0}, "retain_weight\n  Extra inputs are not permitted"),
    ("npo", {"beta": 0}, "beta\n  Input should be greater than 0"),
    ("simnpo", {"beta": -1.0}, "beta\n  Input should be greater than 0"),
    ("simnpo", {"gamma": float("nan")}, "gamma\n  Input should be a finite number"),
    ("grad_diff", {"retain_weight": -0.1}, "retain_weight\n  Input should be greater than or equal to 0"),
    ("npo", {"beta": "high"}, "beta\n  Input should be a valid number"),
])
def test_registry_errors(name, settings, message):
    with pytest.raises(ValueError) as err:
        method_settings(name, **settings)
    assert message in str(err.value)
