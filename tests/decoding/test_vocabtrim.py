"""VocabTrim: frequency counts, the kept ids, counts saved beside a drafter, and a trimmed drafter's logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from memorylab.decoding.drafter import Drafter
from memorylab.decoding.vocabtrim import (
    corpus_counts,
    generation_counts,
    kept_ids,
    load_counts,
    save_counts,
    token_counts,
)
from memorylab.models.backends.hf import load_drafter
from memorylab.models.drafter_training import drafter_config, train_drafter
from memorylab.schema.common import TinyModelConfig, TrainConfig


def test_counts_and_kept_ids():
    counts = token_counts([[1, 2, 2], [2, 5]], vocab_size=6)
    assert counts.tolist() == [0, 1, 3, 0, 0, 1]
    # Most frequent first; ties (1 and 5) by id; `always` ids take their slots whatever their count.
    assert kept_ids(counts, 2).tolist() == [1, 2]
    assert kept_ids(counts, 3, always=[0]).tolist() == [0, 1, 2]
    assert kept_ids(counts, 6).tolist() == list(range(6))
    with pytest.raises(ValueError):
        kept_ids(counts, 1, always=[0, 3])


def test_corpus_and_generation_counts(tokenizer, corpus, target):
    counts = corpus_counts(tokenizer, corpus)
    assert counts.shape == (len(tokenizer),) and counts[tokenizer.eos_token_id] == len(corpus)
    generated = generation_counts(target, corpus[:8], max_new_tokens=6)
    assert 0 < generated.sum() <= 8 * 7


def test_counts_saved_beside_the_drafter(tmp_path):
    with pytest.raises(FileNotFoundError, match="token_counts.json"):
        load_counts(tmp_path)
    save_counts(tmp_path, np.array([3, 0, 7]), "corpus")
    assert load_counts(tmp_path).tolist() == [3, 0, 7]


def test_trimmed_drafter_logits_are_columns_of_the_full_ones(drafter, tokenizer):
    trimmed = drafter.trimmed(40)
    assert trimmed.vocab_size == 40 and tokenizer.eos_token_id in trimmed.token_ids.tolist()
    ids = torch.tensor([tokenizer("Alice of Paris", add_special_tokens=False)["input_ids"]])
    full, _ = drafter.step(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None], None)
    cut, _ = trimmed.step(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None], None)
    assert torch.allclose(cut, full[:, trimmed.token_ids], atol=1e-5)
    # Both share the packed layer weights; only the head differs.
    assert trimmed._lean is drafter._lean
    with pytest.raises(ValueError, match="token counts"):
        Drafter(drafter.lm).trimmed(40)


def test_train_drafter_saves_a_loadable_trimmable_drafter(tokenizer, corpus, tmp_path):
    cfg = drafter_config(TinyModelConfig(hidden_size=32, num_layers=3, num_heads=4, intermediate_size=64,
                                         max_position_embeddings=64, vocab_size=300), num_layers=1)
    assert cfg.num_layers == 1 and cfg.vocab_size == 300
    folder = train_drafter(tokenizer, corpus, cfg, TrainConfig(steps=3, batch_size=2, seq_len=32, warmup_steps=1),
                           tmp_path, show_progress=False)
    loaded = load_drafter(str(folder), vocab=25)
    assert loaded.vocab_size == 25 and loaded.counts.sum() > 0
