"""Shared fixtures for the model and decoding tests: a small corpus, its BPE tokenizer, and a tiny Llama.

The tiny model's matrices are redrawn with a large standard deviation: a freshly initialised model (std
0.02) is close to uniform and greedily repeats one token, which would let batching or position bugs go
unnoticed. With large weights every prompt gets its own, sharply peaked continuation.
"""

from __future__ import annotations

import itertools

import pytest
import torch

from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.schema.common import TinyModelConfig

NAMES = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Farah", "Gustav", "Hiroko"]
CITIES = ["Paris", "Lagos", "Oslo", "Lima", "Kyoto", "Quito"]
JOBS = ["baker", "pilot", "nurse", "carpenter"]


def make_corpus() -> list[str]:
    texts = []
    for i, (name, city, job) in enumerate(itertools.product(NAMES, CITIES, JOBS)):
        texts.append(f"{name} was born in {city}, and works as a {job}. Really? Yes: since {1950 + i}!")
    return texts


TINY = dict(hidden_size=32, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=64,
            max_position_embeddings=64, vocab_size=300)


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    return make_corpus()


@pytest.fixture(scope="session")
def tokenizer(corpus):
    return train_bpe_tokenizer(corpus, vocab_size=300)


@pytest.fixture(scope="session")
def tiny_cfg() -> TinyModelConfig:
    return TinyModelConfig(**TINY)


@pytest.fixture(scope="session")
def tiny_model(tokenizer, tiny_cfg):
    model = build_tiny_model(tiny_cfg, tokenizer, seed=0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    return model.eval()


@pytest.fixture(scope="session")
def lm(tiny_model, tokenizer):
    from memorylab.models.backends.hf import HFLM

    return HFLM(tiny_model, tokenizer, batch_size=4, device="cpu")
