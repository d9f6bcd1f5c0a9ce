"""Fixtures for the actor, cluster and evaluation tests: a real local Ray, a tiny world and a tiny model.

Ray is started per module (not per session) so that a module that must see Ray *down* (the connect tests)
does not depend on the order in which modules run, and so that each module stops what it started.
"""

from __future__ import annotations

from typing import Iterator

import pytest
import ray

from memorylab.cluster import connect
from memorylab.data import build_world
from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.scenario import TinyModelConfig, WorldConfig

# 512 positions: with a 300-token byte-level BPE a biography is about 280 tokens.
TINY = TinyModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, vocab_size=300,
                       max_position_embeddings=512)
WORLD = WorldConfig(num_people=8, forget=2, holdout=2, canaries=1, canary_candidates=20)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A real local Ray on 2 CPUs (no dashboard) for one module; always shut down at teardown."""
    if ray.is_initialized():  # someone else's Ray: use it, stop nothing of theirs
        yield
        return
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.delenv("RAY_ADDRESS", raising=False)  # a set RAY_ADDRESS would make connect() join a cluster
            assert connect(num_cpus=2) is True
        yield
    finally:
        ray.shutdown()


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
