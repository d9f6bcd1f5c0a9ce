"""The shared loop: it forgets the forget set more than the retain set, is deterministic, keeps the forget
stream independent of the retain set, and rejects bad input with a sentence."""

import copy

import pytest
import torch

from memorylab.unlearn.grad_ascent import GradAscent
from memorylab.unlearn.grad_diff import GradDiff
from memorylab.unlearn.loop import unlearn
from memorylab.unlearn.registry import method_settings
from memorylab.unlearn.sequence import sequence_logprobs

FAST = dict(steps=3, batch_size=4, seq_len=64, lr=1e-3)


def _mean_token_logp(model, batch):
    with torch.no_grad():
        logp, n = sequence_logprobs(model, batch)
    return float(logp.sum() / n.sum())


def test_npo_forgets_the_forget_set_more_than_the_retain_set(trained_model, ul_tokenizer, forget_docs,
                                                            retain_docs, forget_batch, retain_batch):
    before = _mean_token_logp(trained_model, forget_batch), _mean_token_logp(trained_model, retain_batch)
    npo = method_settings("npo", steps=10, batch_size=4, seq_len=64, lr=3e-3, retain_weight=1.0)
    result = unlearn(trained_model, ul_tokenizer, forget_docs, retain_docs, npo, show_progress=False)
    after = _mean_token_logp(trained_model, forget_batch), _mean_token_logp(trained_model, retain_batch)
    forget_drop, retain_drop = before[0] - after[0], before[1] - after[1]
    assert forget_drop > 0.5 and forget_drop > retain_drop + 0.5, (before, after)
    assert len(result.losses) == len(result.stats) == 10 and result.seconds > 0
    assert {"npo_loss", "log_ratio", "retain_nll", "lr", "grad_norm"} <= set(result.stats[0])
    assert result.stats[0]["log_ratio"] == pytest.approx(0.0, abs=1e-4)  # step 0: the model is the reference
    assert result.stats[-1]["log_ratio"] < 0
    assert not trained_model.training


@pytest.mark.parametrize("name", ["grad_diff", "simnpo"])
def test_same_seed_same_losses(_trained_state, ul_tokenizer, forget_docs, retain_docs, name):
    def run(seed):
        model = copy.deepcopy(_trained_state)
        return unlearn(model, ul_tokenizer, forget_docs, retain_docs, method_settings(name, **FAST), seed=seed,
                       show_progress=False).losses

    first = run(0)
    assert run(0) == first
    assert run(1) != first


def test_the_forget_stream_does_not_depend_on_the_retain_set(_trained_state, ul_tokenizer, forget_docs,
                                                             retain_docs):
    # Gradient difference with weight 0 is gradient ascent, which draws no retain batches: identical losses
    # mean both saw the same forget batches.
    ga = unlearn(copy.deepcopy(_trained_state), ul_tokenizer, forget_docs, [], GradAscent(**FAST),
                 show_progress=False)
    gd = unlearn(copy.deepcopy(_trained_state), ul_tokenizer, forget_docs, retain_docs,
                 GradDiff(retain_weight=0.0, **FAST), show_progress=False)
    assert ga.losses == pytest.approx(gd.losses, rel=1e-6)


def test_a_zero_retain_weight_needs_no_retain_set(_trained_state, ul_tokenizer, forget_docs, retain_docs):
    result = unlearn(copy.deepcopy(_trained_state), ul_tokenizer, forget_docs, [],
                     method_settings("npo", retain_weight=0.0, **FAST), show_progress=False)
    assert "retain_nll" not in result.stats[0]
    result = unlearn(copy.deepcopy(_trained_state), ul_tokenizer, forget_docs, retain_docs,
                     method_settings("npo", retain_weight=2.0, **FAST), show_progress=False)
    assert "retain_nll" in result.stats[0]


def test_warmup_is_linear_then_constant(trained_model, ul_tokenizer, forget_docs):
    method = GradAscent(steps=4, batch_size=2, seq_len=64, lr=1e-4, warmup_steps=2)
    result = unlearn(trained_model, ul_tokenizer, forget_docs, [], method, show_progress=False)
    assert [s["lr"] for s in result.stats] == pytest.approx([5e-5, 1e-4, 1e-4, 1e-4])


def test_without_grad_clip_the_norm_is_reported_unclipped(trained_model, ul_tokenizer, forget_docs):
    result = unlearn(trained_model, ul_tokenizer, forget_docs, [], GradAscent(grad_clip=None, **FAST),
                     show_progress=False)
    assert all(s["grad_norm"] > 0 for s in result.stats)


def test_empty_forget_set_is_an_error(trained_model, ul_tokenizer, retain_docs):
    with pytest.raises(ValueError, match="forget set is empty"):
        unlearn(trained_model, ul_tokenizer, [], retain_docs, GradAscent(**FAST))


@pytest.mark.parametrize("name", ["grad_diff", "npo", "simnpo"])
def test_a_method_that_uses_retain_needs_retain_docs(trained_model, ul_tokenizer, forget_docs, name):
    with pytest.raises(ValueError, match=f"'{name}' uses a retain set, but no retain documents"):
        unlearn(trained_model, ul_tokenizer, forget_docs, [], method_settings(name, **FAST))


@pytest.mark.parametrize("field, value", [("steps", 0), ("lr", 0.0), ("batch_size", 0), ("warmup_steps", -1),
                                          ("grad_clip", 0.0), ("retain_weight", -1.0)])
def test_bad_settings_fail_at_construction_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        method_settings("npo", **{field: value})
