"""LeanLlama: the lean decoding forward gives transformers' next-token logits for the same weights."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from memorylab.decoding.lean_llama import LeanCache, LeanLlama, unsupported_reason
from memorylab.decoding.loop import decode
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import GenerationParams
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant
from tests.decoding.test_uld_decoding import merged_assistant

TEXTS = ["Alice of Paris works as a baker", "Bob", "Hiroko of Quito works as a judge since 1990.", "Eve of Lima",
         "Gustav", "Farah of Kyoto works as a poet"]
ATOL = 1e-5


def left_padded(lm: HFLM, texts):
    seqs = [[lm.start_id] + ids for ids in lm.encode(texts)]
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), lm.pad_id)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):] = torch.tensor(s)
        mask[row, width - len(s):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


# (atol, rtol) per model; all use grouped-query attention (4 heads, 2 key/value heads). The trained model
# is held to 1e-5. The random ones have large weights (hidden states reach ~27) that amplify float32 rounding
# past that: transformers' own logits are up to 2.2e-5 from a float64 run of the same model there.
TOLERANCES = {"trained_target": (ATOL, 0.0), "random_assistant": (2e-5, 2e-5), "random_target": (2e-5, 2e-5)}


@pytest.fixture(scope="module", params=sorted(TOLERANCES))
def model(request):
    return request.getfixturevalue(request.param), TOLERANCES[request.param]


def test_prefill_and_steps_match_transformers_on_left_padded_batches(model, tokenizer):
    model, (atol, rtol) = model
    lm, lean = HFLM(model, tokenizer), LeanLlama(model)
    ids, mask, positions = left_padded(lm, TEXTS)
    want, past = lm.next_token_logits(ids, mask, None, positions)
    got, cache = lean.step(ids, mask, positions, None)
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
    for step in range(12):
        nxt = want.argmax(-1, keepdim=True)
        # From step 4 on, row 1 has "ended": its new tokens are masked out, as the decoding loop does.
        new_mask = torch.ones(len(TEXTS), 1, dtype=torch.long)
        new_mask[1] = int(step < 4)
        mask, positions = torch.cat([mask, new_mask], dim=-1), positions[:, -1:] + 1
        want, past = lm.next_token_logits(nxt, mask, past, positions)
        got, cache = lean.step(nxt, mask, positions, cache)
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
    assert cache.length == mask.shape[1]


def test_defaults_follow_transformers(model, tokenizer):
    """No mask means every token is real; no positions means cached + 0..T-1."""
    model, (atol, rtol) = model
    lm, lean = HFLM(model, tokenizer), LeanLlama(model)
    ids = torch.tensor([[lm.start_id] + lm.encode([TEXTS[0]])[0]])
    want, past = lm.next_token_logits(ids)
    got, cache = lean.step(ids)
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
    nxt = want.argmax(-1, keepdim=True)
    want, _ = lm.next_token_logits(nxt, None, past)
    got, _ = lean.step(nxt, cache=cache)
    torch.testing.assert_close(got, want, atol=atol, rtol=rtol)


def test_greedy_decoding_matches_transformers(model, tokenizer):
    model, _ = model
    lm, lean = HFLM(model, tokenizer), LeanLlama(model)
    prompts = [[lm.start_id] + ids for ids in lm.encode(TEXTS)]
    params = GenerationParams(max_new_tokens=20)
    kw = dict(pad_id=lm.pad_id, eos_id=tokenizer.eos_token_id)
    assert decode(lean.step, prompts, params, **kw) == decode(lm._step, prompts, params, **kw)


def test_a_cache_that_outgrows_its_buffer_keeps_every_token(model, tokenizer, monkeypatch):
    """A 2-token first buffer grows several times during this decoding (prefill, then doubling): each growth
    must carry the cached keys and values over, so the logits still match transformers."""
    model, (atol, rtol) = model
    monkeypatch.setattr(LeanCache, "MIN_CAPACITY", 2)
    lm, lean = HFLM(model, tokenizer), LeanLlama(model)
    ids, mask, positions = left_padded(lm, TEXTS[:2])
    want, past = lm.next_token_logits(ids, mask, None, positions)
    got, cache = lean.step(ids, mask, positions, None)
    capacities = {cache.kv[0].shape[3]}
    for _ in range(30):
        nxt = want.argmax(-1, keepdim=True)
        mask, positions = torch.cat([mask, torch.ones(2, 1, dtype=torch.long)], dim=-1), positions[:, -1:] + 1
        want, past = lm.next_token_logits(nxt, mask, past, positions)
        got, cache = lean.step(nxt, mask, positions, cache)
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
        capacities.add(cache.kv[0].shape[3])
    assert len(capacities) >= 2 and cache.length == mask.shape[1] <= max(capacities)


def test_merged_assistant_matches_transformers(trained_target, tokenizer):
    """The assistant ULD builds: the target's first layer with merged (here nonzero) LoRA updates."""
    merged = merged_assistant(trained_target)
    lm = HFLM(merged, tokenizer)
    ids, mask, positions = left_padded(lm, TEXTS)
    want, _ = lm.next_token_logits(ids, mask, None, positions)
    got, _ = LeanLlama(merged).step(ids, mask, positions)
    torch.testing.assert_close(got, want, atol=ATOL, rtol=0)


def test_unsupported_models_are_named(random_assistant, trained_target):
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16))
    assert "LlamaForCausalLM" in unsupported_reason(gpt2)
    assert "merge" in unsupported_reason(build_assistant(trained_target, 1))  # an unmerged peft model
    assert "float32" in unsupported_reason(merge_assistant(build_assistant(trained_target, 1)).to(torch.float64))
    assert unsupported_reason(random_assistant) is None
    with pytest.raises(ValueError, match="LlamaForCausalLM"):
        LeanLlama(gpt2)


def test_bad_steps_are_refused(random_assistant, tokenizer):
    lean = LeanLlama(random_assistant)
    ids = torch.tensor([[1, 5, 9], [1, 7, 8]])
    _, cache = lean.step(ids)
    with pytest.raises(ValueError, match="attention_mask must cover"):
        lean.step(ids[:, -1:], torch.ones(2, 3, dtype=torch.long), cache=cache)  # 3 cached + 1 new = 4
    with pytest.raises(ValueError, match="cache holds 2 rows"):
        lean.step(ids[:1, -1:], cache=cache)
    too_long = random_assistant.config.max_position_embeddings + 1
    with pytest.raises(ValueError, match="positions"):
        lean.step(torch.ones(1, too_long, dtype=torch.long))


def test_uld_step_with_a_sparse_assistant_head_equals_the_full_combination(trained_target, tokenizer):
    """A peaked (trained) target keeps few tokens a row: ULD then computes the assistant's head only for the
    kept ids, and the step must equal target - alpha * mask * (full assistant logits)."""
    from memorylab.decoding.uld import ULDLM, _kept, uld_logits

    merged = merged_assistant(trained_target)
    target, assistant = HFLM(trained_target, tokenizer), HFLM(merged, tokenizer)
    uld = ULDLM(target, assistant, alpha=1.5, r=0.1)
    ids, mask, positions = left_padded(target, TEXTS)
    got, _ = uld.next_token_logits(ids, mask, None, positions)
    t_logits, _ = target.next_token_logits(ids, mask, None, positions)
    a_logits, _ = assistant.next_token_logits(ids, mask, None, positions)
    kept = _kept(t_logits.float(), 0.1)
    assert kept is not None and kept.amax(dim=0).sum() * 4 <= kept.shape[-1], "the sparse path must be taken"
    torch.testing.assert_close(got, uld_logits(t_logits, a_logits, 1.5, 0.1), atol=ATOL, rtol=0)
