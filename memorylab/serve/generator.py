"""The agent's generator: memorylab's own Generator deployment (one language model: the tiny target trained here,
or any HF model or checkpoint on a cluster, behind the methods a ModelActor has), or any OpenAI-compatible server
(generator.source: openai), which the deployments that ask it reach with their own HTTP client."""

from __future__ import annotations

from typing import Any, Optional

from ray import serve

from memorylab.actors.model_actor import ModelActor
from memorylab.models.protocol import SpeculativeParams, TextGenerator
from memorylab.schema.memory_agent import GeneratorConfig


@serve.deployment(name="Generator", max_ongoing_requests=32)
class Generator(ModelActor):
    """ModelActor as a Serve deployment. Every call the agent makes of it is stateless (a decoding `step`
    session would live in one replica, so whoever used one would have to end it there)."""

    def __init__(self, source: str, backend: str = "hf", dtype: str = "float32", device: str = "auto",
                 num_threads: int = 1, seed: int = 0, speculative: Optional[SpeculativeParams] = None) -> None:
        # `speculative` (generator.speculative): the drafter lives in this replica, beside the model.
        super().__init__("generator", source, backend=backend, dtype=dtype, device=device,
                         num_threads=num_threads, seed=seed, speculative=speculative)


def text_generator(generator: Any) -> TextGenerator:
    """The agent's generator as this process reaches it: the Generator deployment's handle through RemoteLM,
    or, for a `generator:` block with source openai, its own client of that server."""
    if isinstance(generator, GeneratorConfig):
        from memorylab.models.openai_generator import OpenAIGenerator

        return OpenAIGenerator.from_config(generator)
    from memorylab.actors.remote_lm import RemoteLM

    return RemoteLM(generator)
