"""Fixtures for the actor, cluster and evaluation tests: a tiny world and a tiny model (the local Ray,
`ray_cluster`, lives in tests/conftest.py)."""

from __future__ import annotations

import pytest

from memorylab.data import build_world
from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.scenario import TinyModelConfig, WorldConfig

# 512 positions: with a 300-token byte-level BPE a biography is about 280 tokens.
TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=300,
                       max_position_embeddings=512)
WORLD = WorldConfig(num_people=8, forget=2, holdout=2, canaries=1, canary_candidates=20)


@pytest.fixture(scope="session")
def tiny_world():
    return build_world(WORLD, seed=0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_world) -> str:
    """An untrained tiny Llama and its BPE tokenizer, saved as a hub-style folder."""
    texts = tiny_world.training_documents(["forget", "retain"]) + tiny_world.biographies("holdout")
    tokenizer = train_bpe_tokenizer(texts, TINY.vocab_size)
    model = build_tiny_model(TINY, tokenizer, seed=0)
    path = tmp_path_factory.mktemp("tiny_model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
