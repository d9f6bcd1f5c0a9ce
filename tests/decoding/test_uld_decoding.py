"""The ULD combination: relative-top filter, combined logits, and ULDLM behind the LM protocol."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from memorylab.decoding.loop import decode
from memorylab.decoding.uld import ULDLM, relative_top_mask, uld_logits
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import LM, GenerationParams
from memorylab.models.tiny import build_tiny_model
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant
from tests.decoding.conftest import tiny_cfg

PROBS = [0.5, 0.3, 0.15, 0.05]


def logits_of(probs) -> torch.Tensor:
    return torch.log(torch.tensor(probs, dtype=torch.float32))


@pytest.mark.parametrize("probs, r, keep, binding", [
    # r=0.75: rank k=floor(3)=3 -> p=0.15; max*r=0.375; min is the rank branch -> top 3 kept.
    (PROBS, 0.75, [True, True, True, False], "rank"),
    # r=0.9: k=floor(3.6)=3 (the reference's int) -> p=0.15, max*r=0.45 -> the rank branch: top 3 kept.
    (PROBS, 0.9, [True, True, True, False], "rank"),
    # r=0.5 on a flat head: k=2 -> p=0.28, max*r=0.15 -> the max branch binds: all >= 0.15 kept.
    ([0.3, 0.28, 0.26, 0.16], 0.5, [True, True, True, True], "max"),
    # r=0.4: k=floor(1.6)=1 -> p=0.5, max*r=0.2 -> max branch binds: 0.5 and 0.3 kept (0.15 < 0.2).
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
    # Through transformers for both models, exactly the combination; with the (default) lean assistant, up to
    # float32 rounding of the assistant's logits (see test_lean_llama).
    plain = ULDLM(target_lm, assistant_lm, alpha=1.0, r=0.5, lean_assistant=False)
    assert torch.equal(plain.next_token_logits(ids, torch.ones_like(ids))[0], uld_logits(t_logits, a_logits, 1.0, 0.5))
    torch.testing.assert_close(logits, uld_logits(t_logits, a_logits, 1.0, 0.5), atol=2e-5, rtol=2e-5)


# -- the fast paths give what the straightforward implementation gives -------------------------------------
def reference_uld_logits(target, assistant, alpha, r):
    """ULD's combination written plainly: rank threshold by topk, mask by where (the implementation before the
    float mask, the flat-row shortcut and the lean assistant)."""
    vocab = target.shape[-1]
    k = min(vocab, max(1, int(round(r * vocab, 9))))
    threshold = torch.minimum(target.amax(-1) + math.log(r), target.topk(k, dim=-1).values[..., -1])
    keep = target >= threshold.unsqueeze(-1)
    return target - alpha * torch.where(keep, assistant, torch.zeros_like(assistant))


def mixed_rows(seed: int) -> torch.Tensor:
    """Logit rows of every kind the mask distinguishes: flat (all kept), peaked (rank threshold), a few near
    the top (near-top threshold), ties at the rank boundary."""
    gen = torch.Generator().manual_seed(seed)
    flat = torch.randn(3, 300, generator=gen) * 0.1
    peaked = torch.randn(3, 300, generator=gen) * 4.0
    few_near_top = torch.randn(3, 300, generator=gen)
    few_near_top[:, :5] += 30.0
    ties = torch.randint(0, 4, (3, 300), generator=gen).float()
    return torch.cat([flat, peaked, few_near_top, ties])


@pytest.mark.parametrize("alpha, r", [(1.0, 0.1), (1.5, 0.3), (0.7, 0.01), (2.0, 1.0)])
def test_uld_logits_equal_the_plain_implementation(alpha, r):
    for seed in range(3):
        target, assistant = mixed_rows(seed), mixed_rows(seed + 10) * 3
        assert torch.equal(uld_logits(target, assistant, alpha, r), reference_uld_logits(target, assistant, alpha, r))
        # Sequence logits (B, T, V), as scoring passes them, row by row the same.
        assert torch.equal(uld_logits(target.view(2, 6, -1), assistant.view(2, 6, -1), alpha, r),
                           reference_uld_logits(target, assistant, alpha, r).view(2, 6, -1))
        # All rows flat: the shortcut that builds no mask at all.
        flat = target[:3]
        assert torch.equal(uld_logits(flat, assistant[:3], alpha, r),
                           reference_uld_logits(flat, assistant[:3], alpha, r))
    # A NaN row keeps nothing (its combined logits stay the target's NaN), the others are unaffected.
    target = mixed_rows(0)
    target[4, 7] = float("nan")
    got = uld_logits(target, torch.ones_like(target), 1.0, 0.3)
    assert torch.equal(relative_top_mask(target, 0.3)[4], torch.zeros(300, dtype=torch.bool))
    assert torch.equal(got[5:], reference_uld_logits(target[5:], torch.ones_like(target[5:]), 1.0, 0.3))


def corpus_prompts(corpus, count: int = 36) -> list[str]:
    """Prefixes of 1 to 6 words of the corpus sentences: many lengths, so batches are left-padded."""
    return [" ".join(text.split()[: 1 + i % 6]) for i, text in enumerate(corpus[:count])]


def merged_assistant(target):
    """ULD's assistant for `target` with nonzero LoRA updates merged in (not just the truncated target)."""
    assistant = build_assistant(target, 1)
    with torch.no_grad():
        for name, p in assistant.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(name)))
    return merge_assistant(assistant)


@pytest.fixture(scope="module")
def model_pairs(random_target, random_assistant, trained_target, tokenizer):
    untrained = build_tiny_model(tiny_cfg(2), tokenizer, seed=5).eval()  # flat predictions: every token kept
    return {"random": (random_target, random_assistant), "trained": (trained_target, merged_assistant(trained_target)),
            "untrained": (untrained, merged_assistant(untrained))}


@pytest.mark.parametrize("pair", ["random", "trained", "untrained"])
@pytest.mark.parametrize("alpha, r", [(1.0, 0.1), (1.5, 0.3)])
def test_greedy_tokens_equal_the_plain_implementation(model_pairs, tokenizer, corpus, pair, alpha, r):
    """ULDLM (lean assistant, fast combination) against transformers for both models and the plain
    combination, on 36 prompts decoded as one left-padded batch."""
    target, assistant = (HFLM(m, tokenizer) for m in model_pairs[pair])
    uld = ULDLM(target, assistant, alpha=alpha, r=r)

    def reference_step(ids, mask, positions, past):
        t_past, a_past = past or (None, None)
        t, t_past = target.next_token_logits(ids, mask, t_past, positions)
        a, a_past = assistant.next_token_logits(ids, mask, a_past, positions)
        return reference_uld_logits(t, a, alpha, r), (t_past, a_past)

    prompts = uld._with_start(corpus_prompts(corpus))
    kw = dict(pad_id=uld.pad_id, eos_id=tokenizer.eos_token_id)
    params = GenerationParams(max_new_tokens=16)
    assert decode(uld._step, prompts, params, **kw) == decode(reference_step, prompts, params, **kw)


def test_the_assistant_reads_the_targets_head_only_when_they_are_equal(model_pairs, tokenizer):
    """ULD's assistant keeps the target's head, so the lean path reads the target's tensor (one copy in the
    caches); an assistant with a head of its own keeps it."""
    target, assistant = (HFLM(m, tokenizer) for m in model_pairs["trained"])
    assert ULDLM(target, assistant)._head.data_ptr() == target.model.lm_head.weight.data_ptr()
    target, assistant = (HFLM(m, tokenizer) for m in model_pairs["random"])
    assert ULDLM(target, assistant)._head.data_ptr() == assistant.model.lm_head.weight.data_ptr()


def test_assistants_the_lean_path_cannot_run_go_through_transformers(trained_target, tokenizer, corpus):
    """An unmerged (peft) assistant decodes through transformers, as lean_assistant=False does."""
    assistant = build_assistant(trained_target, 1)
    target = HFLM(trained_target, tokenizer)
    unmerged = ULDLM(target, HFLM(assistant, tokenizer))
    plain = ULDLM(target, HFLM(merge_assistant(assistant), tokenizer), lean_assistant=False)
    params = GenerationParams(max_new_tokens=10)
    prompts = corpus_prompts(corpus, 8)
    assert unmerged.generate(prompts, params) == plain.generate(prompts, params)
