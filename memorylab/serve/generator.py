"""The Generator deployment: one language model (the tiny target here; any HF model or checkpoint on a
cluster) behind the same methods a ModelActor has, so RemoteLM drives it and every reranker, policy and
answer path sees the LM protocol."""

from __future__ import annotations

from typing import Optional

from ray import serve

from memorylab.actors.model_actor import ModelActor
from memorylab.models.protocol import SpeculativeParams


@serve.deployment(name="Generator", max_ongoing_requests=32)
class Generator(ModelActor):
    """ModelActor as a Serve deployment; its `step` sessions live in one replica, so whoever uses them must
    end them (RemoteLM.end_session) and keep the generator at one replica or use stateless calls."""

    def __init__(self, source: str, backend: str = "hf", dtype: str = "float32", device: str = "auto",
                 num_threads: int = 1, seed: int = 0, speculative: Optional[SpeculativeParams] = None) -> None:
        # `speculative` (generator.speculative): the drafter lives in this replica, beside the model.
        super().__init__("generator", source, backend=backend, dtype=dtype, device=device,
                         num_threads=num_threads, seed=seed, speculative=speculative)

    def context_length(self) -> int:
        """The model's context in tokens: what a prompt, its start token and the new tokens must fit."""
        return self.lm.max_length
