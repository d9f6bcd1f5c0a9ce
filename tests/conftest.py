"""Shared by every test folder: one torch thread, a real local Ray for the tests that ask for it, and a tiny
world and tiny model for the evaluation, actor and cluster tests.

Consecutive modules that ask for `ray_cluster` share one local Ray (a start costs seconds on 2 cores); it is
shut down as soon as the next test does not want it, so nothing that runs later (another folder's tests)
silently joins it, and at the end of the session whatever happens. A test that must see Ray *down* asks for
`ray_down`.
"""

from typing import Iterator

import pytest
import ray
import torch

from memorylab.cluster import connect
from memorylab.data import build_world
from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.schema.common import TinyModelConfig, WorldConfig


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Test models are so small that thread start-up costs more than it saves on 2 cores, and one thread
    # keeps float reductions in one order. Session-scoped autouse runs before any session fixture that
    # trains a model. (Ray workers are other processes; their threads follow the scenario's resources.)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class _LocalRay:
    """Starts and stops the tests' local Ray; never touches a Ray that something else started."""

    def __init__(self) -> None:
        self.owned = False

    def up(self) -> None:
        if ray.is_initialized():
            return
        try:
            with pytest.MonkeyPatch.context() as mp:
                mp.delenv("RAY_ADDRESS", raising=False)  # a set RAY_ADDRESS would make connect() join it
                assert connect(num_cpus=2) is True  # connect() says it started (and so owns) this Ray
        except BaseException:
            ray.shutdown()
            raise
        self.owned = True

    def down(self) -> None:
        if self.owned:
            ray.shutdown()
            self.owned = False


LOCAL_RAY = _LocalRay()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # fixtures (actor handles included) are finalized first
    # Only at a module boundary: a module's fixtures hold actors for all of its tests.
    leaving = nextitem is None or nextitem.module is not item.module
    if leaving and "ray_cluster" not in getattr(nextitem, "fixturenames", ()):
        LOCAL_RAY.down()


@pytest.fixture(scope="session", autouse=True)
def _ray_stopped_at_exit() -> Iterator[None]:
    try:
        yield
    finally:
        LOCAL_RAY.down()


@pytest.fixture(scope="module")
def ray_cluster() -> None:
    """A real local Ray on 2 CPUs, no dashboard (see connect())."""
    LOCAL_RAY.up()


@pytest.fixture
def ray_down() -> Iterator[None]:
    """No Ray running during the test, and none left behind by it."""
    LOCAL_RAY.down()
    if ray.is_initialized():
        pytest.skip("a Ray started outside these tests is running")
    try:
        yield
    finally:
        ray.shutdown()


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
