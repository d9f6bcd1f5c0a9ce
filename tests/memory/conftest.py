"""Fixtures shared by the memory tests: one MiniLM embedder for the whole session (loading takes 1-2 s)."""

import pytest

from memorylab.memory.embedder import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()
