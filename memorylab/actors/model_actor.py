"""ModelActor: one LM backend in a Ray actor, with a role (target | assistant | drafter).

Methods mirror the LM protocol and are batched: one remote call carries a whole batch, so the Ray overhead
(about a millisecond a call) is paid per batch, not per text. Token-by-token stepping (for ULD logit
subtraction across two actors) keeps each decoding session's KV cache inside the actor and ships only the
logits, since caches are large and their types do not pickle cheaply.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import ray

from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.models.protocol import GenerationParams
from memorylab.scenario import ActorResources, ModelSpec

ROLES = ("target", "assistant", "drafter")


class ModelActor:
    def __init__(self, role: str, source: str, *, backend: str = "hf", dtype: str = "float32",
                 device: str = "cpu", batch_size: int = 32, num_threads: int = 1, seed: int = 0) -> None:
        import torch

        from memorylab.models.registry import load_lm

        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        self.role, self.source = role, source
        self.lm = load_lm(source, backend=backend, dtype=dtype, device=device, batch_size=batch_size)
        self._sessions: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        import torch

        model = getattr(self.lm, "model", None)
        params = sum(p.numel() for p in model.parameters()) if model is not None else None
        return {"role": self.role, "source": self.source, "device": str(getattr(self.lm, "device", "")),
                "parameters": params, "threads": torch.get_num_threads()}

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.lm.encode(texts)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return self.lm.decode(ids)

    def token_logprobs(self, texts: Sequence[str]) -> list[np.ndarray]:
        return self.lm.token_logprobs(texts)

    def token_logprob_moments(self, texts: Sequence[str]) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        return self.lm.token_logprob_moments(texts)

    def loglikelihood(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        return self.lm.loglikelihood(pairs)

    def generate(self, prompts: Sequence[str], params: GenerationParams) -> list[str]:
        return self.lm.generate(prompts, params)

    def step(self, session: str, input_ids: np.ndarray, attention_mask: Optional[np.ndarray] = None,
             position_ids: Optional[np.ndarray] = None) -> np.ndarray:
        """Next-token logits for a decoding session; the first call of a session starts a fresh cache.

        A mask, when given, covers the cached tokens too (past + new, as transformers expects); None means
        every token so far is real, which lets a single-row caller step without tracking the length."""
        import torch

        # inference_mode: no autograd graph is kept alive in the cache, and .numpy() works on the logits.
        with torch.inference_mode():
            logits, past = self.lm.next_token_logits(
                torch.as_tensor(input_ids), None if attention_mask is None else torch.as_tensor(attention_mask),
                self._sessions.get(session), None if position_ids is None else torch.as_tensor(position_ids))
        self._sessions[session] = past
        return logits.float().cpu().numpy()

    def end_session(self, session: str) -> None:
        self._sessions.pop(session, None)


def create_model_actor(role: str, source: str, spec: ModelSpec, resources: ActorResources, *, seed: int = 0,
                       batch_size: int = 32, name: Optional[str] = None) -> Any:
    """Start a ModelActor with the scenario's resources (fractional GPUs allowed)."""
    # Checked here too: inside the actor a bad role only surfaces, as an ActorDiedError, at the first call.
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    options = actor_options(resources)
    if name:
        options["name"] = name
    return ray.remote(ModelActor).options(**options).remote(
        role, source, backend=spec.backend, dtype=spec.dtype, device=device_for(resources, spec.device),
        batch_size=batch_size, num_threads=torch_threads(resources), seed=seed)
