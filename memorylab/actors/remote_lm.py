"""RemoteLM: the LM protocol over a ModelActor handle, so evaluation code never knows where a model runs.

The handle is a Ray actor handle or a Ray Serve deployment handle to a ModelActor-shaped deployment (the
serve generator): an actor call returns an ObjectRef (ray.get), a deployment call a DeploymentResponse
(.result(), which must not run on the replica's event loop thread).
"""

from __future__ import annotations

import functools
import uuid
from typing import Any, Optional, Sequence

import numpy as np
import ray

from memorylab.models.protocol import Completion, GenerationParams


def _get(call: Any) -> Any:
    return ray.get(call) if isinstance(call, ray.ObjectRef) else call.result()


class RemoteLM:
    def __init__(self, handle: Any) -> None:
        self.handle = handle

    @functools.cached_property
    def max_length(self) -> int:
        """The model's context in tokens (read from the actor once)."""
        return int(_get(self.handle.lm_settings.remote())["max_length"])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return _get(self.handle.count_tokens.remote(list(texts)))

    def clip(self, texts: Sequence[str], max_tokens: int, keep: str = "start") -> list[str]:
        return _get(self.handle.clip.remote(list(texts), max_tokens, keep))

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        return _get(self.handle.complete.remote(list(prompts), params, logprobs))

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        return _get(self.handle.label_logprobs.remote(list(prompts), list(labels)))

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return _get(self.handle.encode.remote(list(texts)))

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return _get(self.handle.decode.remote([list(i) for i in ids]))

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        return _get(self.handle.token_logprobs.remote(list(texts)))

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return _get(self.handle.token_logprob_moments.remote(list(texts)))

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return _get(self.handle.loglikelihood.remote([tuple(p) for p in pairs]))

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return _get(self.handle.generate.remote(list(prompts), params))

    def next_token_logits(self, input_ids: Any, attention_mask: Any = None, past: Any = None,
                          position_ids: Any = None) -> tuple[np.ndarray, str]:
        """Here `past` is a session id kept by the actor (None starts one), not a cache object.

        A missing mask stays missing: the actor's model then treats every cached and new token as real.
        (A mask of ones shaped like `input_ids` would be wrong once a session has a cache: transformers
        reads a mask as covering past + new tokens, and a short one silently shifts the logits.)"""
        session = past or uuid.uuid4().hex
        logits = _get(self.handle.step.remote(
            session, np.asarray(input_ids), None if attention_mask is None else np.asarray(attention_mask),
            None if position_ids is None else np.asarray(position_ids)))
        return logits, session

    def end_session(self, session: str) -> None:
        _get(self.handle.end_session.remote(session))

    def sequence_logits(self, input_ids: Any, attention_mask: Any) -> np.ndarray:
        """Logits (B, T, V) of right-padded ids, computed in the actor (float32 numpy)."""
        return _get(self.handle.sequence_logits.remote(np.asarray(input_ids), np.asarray(attention_mask)))
