"""The ULD combination: relative-top filter, combined logits, and ULDLM behind the LM protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memorylab.decoding.uld import ULDLM, relative_top_mask, uld_logits
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import LM, GenerationParams

PROBS = [0.5, 0.3, 0.15, 0.05]


def logits_of(probs) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float32))


@pytest.mark.parametrize("probs, r, keep, binding", [
    # r=0.75: rank k=ceil(3)=3 -> p=0.15; max*r=0.375; min is the rank branch -> top 3 kept.
    (PROBS, 0.75, [True, True, True, False], "rank"),
    # r=0.9: k=ceil(3.6)=4 -> p=0.05 (the last), max*r=0.45 -> everything kept.
    (PROBS, 0.9, [True, True, True, True], "rank"),
    # r=0.5 on a flat head: k=2 -> p=0.28, max*r=0.15 -> the max branch binds: all >= 0.15 kept.
    ([0.3, 0.28, 0.26, 0.16], 0.5, [True, True, True, True], "max"),
    # r=0.4: k=ceil(1.6)=2 -> p=0.3, max*r=0.2 -> max branch binds: 0.5 and 0.3 kept (0.15 < 0.2).
    (PROBS, 0.4, [True, True, False, False], "max"),
    # r=0.2: r*|V| = 0.8 < 1 -> rank 1 (p=0.5); max*r=0.1 -> max branch binds: three kept.
    (PROBS, 0.2, [True, True, True, False], "max"),
    # r=1 keeps everything.
    (PROBS, 1.0, [True, True, True, True], "either"),
])
def test_relative_top_mask_hand_cases(probs, r, keep, binding):
    mask = relative_top_mask(logits_of(probs), r)
    assert mask.dtype == torch.bool
    assert mask.tolist() == keep
    # Shifting the logits by a constant changes nothing (the filter reads log-probs).
    assert relative_top_mask(logits_of(probs) + 7.0, r).tolist() == keep


def test_relative_top_mask_is_per_row_and_checks_r():
    # Row 2 is row 1 reversed: the mask follows each row's own ranking.
    rows = torch.stack([logits_of(PROBS), logits_of(PROBS[::-1])])
    assert relative_top_mask(rows, 0.4).tolist() == [[True, True, False, False], [False, False, True, True]]
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            relative_top_mask(rows, bad)


def test_uld_logits_hand_case():
    target = logits_of(PROBS)
    assistant = torch.tensor([1.0, 2.0, 3.0, 4.0])
    # r=0.75 keeps the top 3 (see above): the 4th assistant logit is zeroed.
    expected = target - 2.0 * torch.tensor([1.0, 2.0, 3.0, 0.0])
    assert torch.allclose(uld_logits(target, assistant, 2.0, 0.75), expected)
    assert torch.equal(uld_logits(target, assistant, 0.0, 0.75), target)
    with pytest.raises(ValueError):
        uld_logits(target, assistant, -1.0, 0.5)
    with pytest.raises(ValueError):
        uld_logits(target, assistant[:3], 1.0, 0.5)


@pytest.fixture(scope="module")
def target_lm(random_target, tokenizer):
    return HFLM(random_target, tokenizer, batch_size=4)


@pytest.fixture(scope="module")
def assistant_lm(random_assistant, tokenizer):
    return HFLM(random_assistant, tokenizer, batch_size=4)


TEXTS = ["Alice of Paris works as a baker", "Bob", "Hiroko of Quito works as a judge since 1990.",
         "Eve of Lima", "Gustav of Oslo works", "Farah"]


def test_uldlm_is_an_lm_and_checks_its_arguments(target_lm, assistant_lm):
    assert isinstance(ULDLM(target_lm, assistant_lm), LM)
    with pytest.raises(ValueError):
        ULDLM(target_lm, assistant_lm, alpha=-0.5)
    for r in (0.0, 1.01):
        with pytest.raises(ValueError):
            ULDLM(target_lm, assistant_lm, r=r)


def test_alpha_zero_is_the_target(target_lm, assistant_lm):
    uld = ULDLM(target_lm, assistant_lm, alpha=0.0, r=0.5)
    for a, b in zip(uld.token_logprobs(TEXTS), target_lm.token_logprobs(TEXTS)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(uld.token_logprob_moments(TEXTS), target_lm.token_logprob_moments(TEXTS)):
        for x, y in zip(a, b):
            np.testing.assert_array_equal(x, y)
    pairs = [("Alice of", " Paris"), ("Bob", " of Lima works")]
    assert uld.loglikelihood(pairs) == target_lm.loglikelihood(pairs)
    params = GenerationParams(max_new_tokens=12)
    assert uld.generate(TEXTS, params) == target_lm.generate(TEXTS, params)


def full_logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_token_logprobs_are_log_softmax_of_the_combined_logits(target_lm, assistant_lm, random_target,
                                                               random_assistant):
    uld = ULDLM(target_lm, assistant_lm, alpha=1.5, r=0.3)
    got = uld.token_logprobs(TEXTS)
    for text, lp in zip(TEXTS, got):
        ids = [target_lm.start_id] + target_lm.encode([text])[0]
        combined = uld_logits(full_logits(random_target, ids), full_logits(random_assistant, ids), 1.5, 0.3)
        want = torch.log_softmax(combined, -1)[:-1].gather(-1, torch.tensor(ids[1:]).unsqueeze(-1)).squeeze(-1)
        np.testing.assert_allclose(lp, want.double().numpy(), atol=1e-4)
    # The assistant really changes the scores.
    assert not np.allclose(np.concatenate(got), np.concatenate(target_lm.token_logprobs(TEXTS)))
    # loglikelihood is the sum over the continuation's tokens, as for any LM.
    ll = uld.loglikelihood([("", TEXTS[0])])[0]
    assert ll == pytest.approx(float(got[0].sum()), abs=1e-3)


def test_greedy_generation_follows_the_combined_logits(target_lm, assistant_lm, random_target, random_assistant):
    uld = ULDLM(target_lm, assistant_lm, alpha=1.0, r=0.5)
    params = GenerationParams(max_new_tokens=8)
    for text, out in zip(TEXTS[:3], uld.generate(TEXTS[:3], params)):
        # Recompute without any cache: argmax of the combined logits at the last position, token by token.
        ids = [target_lm.start_id] + target_lm.encode([text])[0]
        new = []
        for _ in range(8):
            seq = ids + new
            nxt = int(uld_logits(full_logits(random_target, seq), full_logits(random_assistant, seq), 1.0, 0.5)[-1]
                      .argmax())
            new.append(nxt)
            if nxt == target_lm.tokenizer.eos_token_id:
                break
        assert out == target_lm.decode([new])[0]
    assert uld.generate(TEXTS[:3], params) != target_lm.generate(TEXTS[:3], params)


def test_batched_generation_equals_one_prompt_at_a_time(target_lm, assistant_lm):
    uld = ULDLM(target_lm, assistant_lm, alpha=1.0, r=0.2)
    for params in (GenerationParams(max_new_tokens=10),
                   GenerationParams(max_new_tokens=10, temperature=0.0, stop=(".",))):
        batched = uld.generate(TEXTS, params)
        assert batched == [uld.generate([t], params)[0] for t in TEXTS]


def test_next_token_logits_carries_both_caches(target_lm, assistant_lm):
    uld = ULDLM(target_lm, assistant_lm, alpha=1.0, r=0.5)
    ids = torch.tensor([[target_lm.start_id] + target_lm.encode(["Alice of"])[0]])
    logits, past = uld.next_token_logits(ids, torch.ones_like(ids))
    assert logits.shape == (1, len(target_lm.tokenizer))
    assert isinstance(past, tuple) and len(past) == 2
    t_logits, _ = target_lm.next_token_logits(ids, torch.ones_like(ids))
    a_logits, _ = assistant_lm.next_token_logits(ids, torch.ones_like(ids))
    assert torch.allclose(logits, uld_logits(t_logits, a_logits, 1.0, 0.5))
