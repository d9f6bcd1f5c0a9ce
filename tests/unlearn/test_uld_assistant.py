"""ULD's assistant: built from the target's first K layers with LoRA, trained to remember the forget set and
be uniform on the retain set, merged into a plain model; and the end-to-end effect of ULD on a toy target."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaForCausalLM

from memorylab.decoding.uld import ULDLM
from memorylab.models.backends.hf import HFLM
from memorylab.unlearn.uld import ULD
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant, train_assistant

# ULD's corpus and targets (tests/decoding/conftest.py), over tests/unlearn's four sentences: module fixtures win.
from tests.decoding.conftest import corpus, forget_docs, random_target, retain_docs, tokenizer, trained_target  # noqa: F401

LORA_KINDS = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
QUICK = ULD(steps=30, lr=3e-3, batch_size=4, seq_len=64)


def test_build_assistant_copies_the_first_layers(random_target):
    assistant = build_assistant(random_target, 2)
    base = assistant.get_base_model()
    assert isinstance(base, LlamaForCausalLM)
    assert base.config.num_hidden_layers == 2 and len(base.model.layers) == 2
    assert random_target.config.num_hidden_layers == 3  # the target's config is untouched
    pairs = [(base.model.embed_tokens.weight, random_target.model.embed_tokens.weight),
             (base.model.norm.weight, random_target.model.norm.weight),
             (base.lm_head.weight, random_target.lm_head.weight)]
    for i in range(2):
        for name, p in random_target.model.layers[i].named_parameters():
            mine = dict(base.model.layers[i].named_parameters())
            # peft wraps the projections: their weight lives at <proj>.base_layer.weight
            key = name.replace(".weight", ".base_layer.weight") if name.split(".")[-2] in LORA_KINDS else name
            pairs.append((mine[key], p))
    for mine, theirs in pairs:
        assert torch.equal(mine, theirs)
        assert mine.data_ptr() != theirs.data_ptr()
        assert not mine.requires_grad
    # A fresh assistant (LoRA B = 0) of all three layers computes exactly what the target does.
    full = build_assistant(random_target, 3)
    ids = torch.tensor([[1, 5, 9, 40, 7]])
    with torch.no_grad():
        assert torch.allclose(full(input_ids=ids).logits, random_target(input_ids=ids).logits, atol=1e-5)


def test_only_lora_parameters_train(random_target):
    assistant = build_assistant(random_target, 1, lora_rank=4)
    trainable = [n for n, p in assistant.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert {n.split(".lora_")[0].split(".")[-1] for n in trainable} == LORA_KINDS
    assert all(p.requires_grad for p in random_target.parameters())  # the target's own flags are untouched


def test_build_assistant_rejects_bad_depths_and_architectures(random_target):
    for k in (0, 4, -1):
        with pytest.raises(ValueError, match="num_layers"):
            build_assistant(random_target, k)
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=8, n_head=2, vocab_size=16, n_positions=16))
    with pytest.raises(ValueError, match="Llama"):
        build_assistant(gpt2, 1)


def mean_entropy(model, tokenizer, docs) -> float:
    lm = HFLM(model, tokenizer, batch_size=16)
    ents = []
    for _, logp, _ in lm._forward_logprobs(lm._with_start(docs)):
        ents.append(float(-(logp.exp() * logp).sum(-1).mean()))
    return float(np.mean(ents))


def forget_nll(model, tokenizer, docs) -> float:
    lm = HFLM(model, tokenizer, batch_size=16)
    return -float(np.mean([lp.mean() for lp in lm.token_logprobs(docs)]))


def test_training_remembers_forget_and_flattens_retain(trained_target, tokenizer, forget_docs, retain_docs):
    assistant = build_assistant(trained_target, 1)
    nll0, ent0 = forget_nll(assistant, tokenizer, forget_docs), mean_entropy(assistant, tokenizer, retain_docs)
    losses = train_assistant(assistant, tokenizer, forget_docs, retain_docs, QUICK, show_progress=False)
    assert len(losses) == QUICK.steps and all(math.isfinite(x) for x in losses)
    assert not assistant.training
    nll1, ent1 = forget_nll(assistant, tokenizer, forget_docs), mean_entropy(assistant, tokenizer, retain_docs)
    assert nll1 < nll0 - 0.2
    assert ent1 > ent0 + 0.5
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_training_is_deterministic(random_target, tokenizer, forget_docs, retain_docs):
    cfg = ULD(steps=5, lr=3e-3, batch_size=2, seq_len=64)
    runs = []
    for _ in range(2):
        assistant = build_assistant(random_target, 1, seed=7)
        losses = train_assistant(assistant, tokenizer, forget_docs, retain_docs, cfg, seed=3, show_progress=False)
        runs.append((losses, {n: p.detach().clone() for n, p in assistant.named_parameters() if p.requires_grad}))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(runs[0][1][n], runs[1][1][n]) for n in runs[0][1])
    other = train_assistant(build_assistant(random_target, 1, seed=7), tokenizer, forget_docs, retain_docs,
                            cfg, seed=4, show_progress=False)
    assert other != runs[0][0]


def test_train_assistant_rejects_empty_forget(random_target, tokenizer, retain_docs):
    with pytest.raises(ValueError):
        train_assistant(build_assistant(random_target, 1), tokenizer, [], retain_docs, QUICK, show_progress=False)
    with pytest.raises(ValueError):
        ULD(steps=0)


def test_merged_assistant_saves_and_loads(random_target, tokenizer, forget_docs, retain_docs, tmp_path):
    assistant = build_assistant(random_target, 2)
    train_assistant(assistant, tokenizer, forget_docs, retain_docs,
                    ULD(steps=3, lr=1e-2, batch_size=2, seq_len=64), show_progress=False)
    merged = merge_assistant(assistant)
    assert isinstance(merged, LlamaForCausalLM)
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    assert any("lora_" in n for n, _ in assistant.named_parameters())  # the peft model is left as it was
    merged.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = HFLM.load(str(tmp_path), device="cpu")
    texts = forget_docs[:3]
    got = loaded.token_logprobs(texts)
    want = HFLM(assistant, tokenizer).token_logprobs(texts)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # The LoRA update is really in the merged weights: they differ from the untrained copy's.
    fresh = HFLM(build_assistant(random_target, 2), tokenizer).token_logprobs(texts)
    assert not np.allclose(np.concatenate(got), np.concatenate(fresh), atol=1e-3)


def test_uld_forgets_the_forget_set_more_than_the_retain_set(trained_target, tokenizer, forget_docs,
                                                              retain_docs):
    assistant = build_assistant(trained_target, 1)
    train_assistant(assistant, tokenizer, forget_docs, retain_docs,
                    ULD(steps=60, lr=3e-3, batch_size=8, seq_len=64), show_progress=False)
    target = HFLM(trained_target, tokenizer, batch_size=16)
    uld = ULDLM(target, HFLM(merge_assistant(assistant), tokenizer, batch_size=16), alpha=1.0, r=0.1)

    def mean_ll(lm, docs):
        return float(np.mean([lp.sum() for lp in lm.token_logprobs(docs)]))

    forget_drop = mean_ll(target, forget_docs) - mean_ll(uld, forget_docs)
    retain_drop = mean_ll(target, retain_docs) - mean_ll(uld, retain_docs)
    print(f'forget drop {forget_drop:.1f} nats, retain drop {retain_drop:.1f}')
    assert forget_drop > 20.0
    assert forget_drop > 2.0 * retain_drop


def test_warmup_and_clipping_reach_the_assistants_updates(random_target, tokenizer, forget_docs, retain_docs):
    def train(**options):
        assistant = build_assistant(random_target, 1, seed=7)
        before = {n: p.detach().clone() for n, p in assistant.named_parameters() if p.requires_grad}
        cfg = ULD(steps=3, lr=3e-3, batch_size=2, seq_len=64, **options)
        losses = train_assistant(assistant, tokenizer, forget_docs, retain_docs, cfg, seed=3, show_progress=False)
        moved = sum(float((p.detach() - before[n]).norm()) for n, p in assistant.named_parameters() if p.requires_grad)
        return losses, moved

    plain_losses, plain = train()
    _, warming = train(warmup_steps=1000)  # every step at most 3/1000 of the learning rate
    assert warming < plain / 100
    clipped_losses, _ = train(grad_clip=1e-9)
    assert clipped_losses[0] == plain_losses[0] and clipped_losses[1:] != plain_losses[1:]
    with pytest.raises(ValueError, match="grad_clip"):
        ULD(grad_clip=0.0)
