"""Fixtures for the unlearning tests: a handful of sentences about fictitious people, a BPE tokenizer, and a
tiny Llama briefly trained on them (once per session; each test gets its own copy to unlearn in place)."""

from __future__ import annotations

import copy

import pytest
import torch

from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.models.trainer import collate, tokenize_documents, train_causal_lm
from memorylab.schema.common import TinyModelConfig, TrainConfig

FORGET = [
    "Alice Moreau was born in Lagos and works as a baker since 1971.",
    "Bob Lindqvist was born in Oslo and works as a pilot since 1964.",
    "Carol Ibarra was born in Quito and works as a nurse since 1983.",
    "Dmitri Sato was born in Kyoto and works as a carpenter since 1958.",
]
RETAIN = [
    "Eve Okafor was born in Lima and works as a teacher since 1990.",
    "Farah Novak was born in Paris and works as a farmer since 1977.",
    "Gustav Reyes was born in Cairo and works as a painter since 1969.",
    "Hiroko Adams was born in Dakar and works as a judge since 1986.",
]
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
            max_position_embeddings=64, vocab_size=300)


@pytest.fixture(scope="session")
def ul_tokenizer():
    return train_bpe_tokenizer(FORGET + RETAIN, vocab_size=300)


@pytest.fixture(scope="session")
def _trained_state(ul_tokenizer, tmp_path_factory):
    # Session fixtures are set up before the module-scoped _one_thread, so this one sets threads itself.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = build_tiny_model(TinyModelConfig(**TINY), ul_tokenizer, seed=0)
        cfg = TrainConfig(steps=40, batch_size=8, seq_len=64, lr=1e-2, warmup_steps=5, checkpoint_every=1000)
        train_causal_lm(model, ul_tokenizer, FORGET + RETAIN, cfg, tmp_path_factory.mktemp("tiny"), seed=0,
                        show_progress=False)
    finally:
        torch.set_num_threads(before)
    return model.eval()


@pytest.fixture
def trained_model(_trained_state):
    """A fresh copy of the briefly trained model, free to modify."""
    return copy.deepcopy(_trained_state)


@pytest.fixture(scope="session")
def untrained_model(ul_tokenizer):
    """A freshly initialised model for loss arithmetic (never modified by the tests that use it)."""
    return build_tiny_model(TinyModelConfig(**TINY), ul_tokenizer, seed=1).eval()


def make_batch(tokenizer, docs, seq_len=64):
    """One row per document, padded: rows of different lengths exercise the IGNORE mask."""
    return collate(tokenize_documents(tokenizer, docs, seq_len), tokenizer.pad_token_id)


@pytest.fixture
def forget_batch(ul_tokenizer):
    return make_batch(ul_tokenizer, FORGET)


@pytest.fixture
def retain_batch(ul_tokenizer):
    return make_batch(ul_tokenizer, RETAIN)


# Tests reach the data and helpers through fixtures, not `from conftest import`: with several conftest.py
# files in a run and no __init__.py, the module called `conftest` may be another folder's.
@pytest.fixture(scope="session")
def forget_docs():
    return list(FORGET)


@pytest.fixture(scope="session")
def retain_docs():
    return list(RETAIN)


@pytest.fixture(scope="session")
def batch_of(ul_tokenizer):
    return lambda docs: make_batch(ul_tokenizer, docs)
