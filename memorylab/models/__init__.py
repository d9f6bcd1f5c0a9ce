"""Models: the LM protocol, backends by name, tiny-model builder, tokenizer training and the trainer."""

from memorylab.models.protocol import LM, GenerationParams
from memorylab.models.registry import BACKENDS, backend_class, load_lm, register_backend

__all__ = ["LM", "GenerationParams", "BACKENDS", "backend_class", "load_lm", "register_backend"]
