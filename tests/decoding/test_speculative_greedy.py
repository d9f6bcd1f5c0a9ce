"""Greedy speculative decoding gives exactly the tokens of plain greedy decoding: for the target and for the
ULD-combined model, on 240 prompts of mixed lengths, with EOS, stop strings, max_new_tokens cut mid-round,
one-row batches (full cache rollback), VocabTrim and adaptive gamma; and the cache rollback itself."""

from __future__ import annotations

import pytest
import torch

from memorylab.decoding.drafter import Drafter
from memorylab.decoding.lean_llama import LeanLlama
from memorylab.decoding.speculative import drop_last
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import GenerationParams, SpeculativeParams
from tests.decoding.conftest import random_model


def both(lm, prompts, spec: SpeculativeParams, **params):
    plain = lm.generate(prompts, GenerationParams(**params))
    return plain, lm.generate(prompts, GenerationParams(**params, speculative=spec))


@pytest.fixture
def attached(target, uld, drafter):
    target.drafter = uld.drafter = drafter
    yield
    target.drafter = uld.drafter = None


@pytest.mark.parametrize("spec", [SpeculativeParams(gamma=4), SpeculativeParams(gamma=1),
                                  SpeculativeParams(gamma=3, adaptive=True), SpeculativeParams(gamma=4, vocab=60)],
                         ids=["gamma4", "gamma1", "adaptive", "vocabtrim60"])
def test_target_greedy_equals_plain_greedy(target, prompts, attached, spec):
    plain, fast = both(target, prompts, spec, max_new_tokens=14)
    assert len(prompts) >= 200 and fast == plain
    stats = target.speculative_stats
    # Meaningful: drafts were both kept and rejected, and rows ended at EOS before the budget.
    assert 0.1 < stats.acceptance_rate < 0.95, stats.as_dict()
    assert stats.emitted < 14 * len(prompts)


def test_uld_greedy_equals_plain_uld_greedy(uld, target, prompts, attached):
    plain, fast = both(uld, prompts, SpeculativeParams(gamma=4), max_new_tokens=14)
    assert fast == plain
    # The ULD model says something else than its target on some prompts: the check is not the target's again.
    assert plain != target.generate(prompts, GenerationParams(max_new_tokens=14))
    assert 0.1 < uld.speculative_stats.acceptance_rate < 0.95


@pytest.mark.parametrize("params", [dict(max_new_tokens=1), dict(max_new_tokens=2), dict(max_new_tokens=7),
                                    dict(max_new_tokens=20, stop=(" as",)), dict(max_new_tokens=20, stop=("9",))])
def test_limits_and_stop_strings(target, prompts, attached, params):
    plain, fast = both(target, prompts[::5], SpeculativeParams(gamma=5), **params)
    assert fast == plain


def test_one_row_batches_roll_the_cache_back(target, prompts, drafter):
    one = HFLM(target.model, target.tokenizer, batch_size=1)
    one.drafter = drafter
    plain, fast = both(one, prompts[::12], SpeculativeParams(gamma=4), max_new_tokens=16)
    assert fast == plain


def test_drafter_by_path_and_a_drafter_that_always_misses(target, prompts, drafter, tmp_path, tokenizer):
    drafter.lm.model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    plain, fast = both(target, prompts[::7], SpeculativeParams(drafter=str(tmp_path)), max_new_tokens=12)
    assert fast == plain
    target.drafter = Drafter(HFLM(random_model(tokenizer, seed=5, layers=1), tokenizer))  # random: rejects
    try:
        plain, fast = both(target, prompts[::7], SpeculativeParams(gamma=3), max_new_tokens=12)
        assert fast == plain and target.speculative_stats.acceptance_rate < 0.1
    finally:
        target.drafter = None


def test_missing_drafter_and_foreign_tokenizer_are_refused(target, corpus):
    from memorylab.models.tokenizer import train_bpe_tokenizer

    with pytest.raises(ValueError, match="needs a drafter"):
        target.generate(["Alice"], GenerationParams(speculative=SpeculativeParams()))
    other = train_bpe_tokenizer(corpus[:10], vocab_size=280)
    target.drafter = Drafter(HFLM(random_model(other, seed=0, layers=1), other))
    try:
        with pytest.raises(ValueError, match="tokenizer"):
            target.generate(["Alice"], GenerationParams(speculative=SpeculativeParams()))
    finally:
        target.drafter = None


def test_verify_logits_match_step_by_step(target, uld, tokenizer):
    ids = torch.tensor([tokenizer("Alice of Paris works as", add_special_tokens=False)["input_ids"]])
    for lm in (target, uld):
        _, past = lm.next_token_logits(ids[:, :2])
        all_at_once, _ = lm.verify_logits(ids[:, 2:], None, past)
        _, past = lm.next_token_logits(ids[:, :2])
        for t in range(2, ids.shape[1]):
            logits, past = lm.next_token_logits(ids[:, t:t + 1], None, past)
            assert torch.allclose(all_at_once[:, t - 2], logits, atol=1e-4)


@pytest.mark.parametrize("lean", [True, False])
def test_drop_last_is_a_rollback(target, lean):
    """Stepping 3 tokens, dropping them and stepping 1 equals stepping that 1 token right after the prompt."""
    ids = torch.tensor([[5, 17, 42, 9, 33, 70]])
    if lean:
        model = LeanLlama(target.model)
        step = lambda x, past: model.step(x, None, None, past)  # noqa: E731
    else:
        step = lambda x, past: target.next_token_logits(x, None, past)  # noqa: E731
    _, past = step(ids[:, :3], None)
    _, past = step(ids[:, 3:6], past)
    drop_last(past, 3)
    rolled, _ = step(ids[:, 5:6], past)
    _, fresh = step(ids[:, :3], None)
    expected, _ = step(ids[:, 5:6], fresh)
    assert torch.allclose(rolled, expected, atol=1e-5)
