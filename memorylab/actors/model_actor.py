"""ModelActor: one LM backend in a Ray actor, with a role (target | assistant | drafter).

Methods mirror the LM protocol and are batched: one remote call carries a whole batch, so Ray's fixed
overhead per call is paid per batch, not per text. Token-by-token stepping (for ULD logit subtraction across
two actors) keeps each decoding session's KV cache inside the actor and ships only the logits, since caches
are large and their types do not pickle cheaply.

ULD can live in ONE actor: given `assistant_source`, the actor loads target and assistant side by side and
hosts their combination (`ULDLM`) as its LM, so each decoding step is two local forwards on one core. Or in
TWO: given `assistant_actor` (the handle of an assistant's actor in the same placement group), the actor hosts
the target and `memorylab.decoding.lockstep.LockstepULD`, whose steps send the ids to the assistant's actor
over a direct link (`open_link`) and run both forwards at once, on two cores or devices. bench/uld_decode.py
measures both against the target alone.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Optional, Sequence

import numpy as np
import ray

from memorylab.arrays import tensor_from
from memorylab.cluster.resources import actor_options, device_for, torch_threads
from memorylab.models.protocol import Completion, GenerationParams, SpeculativeParams
from memorylab.schema.common import ActorResources, ModelSpec

ROLES = ("target", "assistant", "drafter", "generator")  # generator: the model a served agent answers with


class ModelActor:
    def __init__(self, role: str, source: str, *, backend: str = "hf", dtype: str = "float32",
                 device: str = "cpu", batch_size: int = 32, num_threads: int = 1, seed: int = 0,
                 assistant_source: Optional[str] = None, uld_alpha: float = 1.0, uld_r: float = 0.1,
                 speculative: Optional[SpeculativeParams] = None, assistant_actor: Any = None) -> None:
        import torch

        from memorylab.models.registry import load_lm

        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        self.role, self.source, self.assistant_source = role, source, assistant_source
        self.speculative = speculative
        self._links: dict[str, Any] = {}  # address -> LinkServer of a target's actor stepping beside this one
        self._lean: Any = None  # the LeanLlama step of those links (False: not usable here)
        if assistant_actor is not None:
            # ULD over two actors: this one hosts the target and drives the decoding; the assistant's actor
            # steps beside it through a direct link (see memorylab.decoding.lockstep).
            from memorylab.decoding.lockstep import LockstepULD
            from memorylab.models.backends.hf import HFLM

            if backend != "hf" or assistant_source is not None:
                raise ValueError("ULD over two actors needs the 'hf' backend and no assistant_source")
            target = HFLM.load(source, dtype=dtype, device=device, batch_size=batch_size)
            self.lm = LockstepULD(target, assistant_actor, alpha=uld_alpha, r=uld_r)
        elif assistant_source is None:
            # The drafter is loaded now (a vLLM engine takes it at construction), not at the first generation.
            self.lm = load_lm(source, backend=backend, dtype=dtype, device=device, batch_size=batch_size,
                              speculative=speculative)
        else:
            # ULD in one actor: the logit subtraction needs both models' logits every token, so hosting both
            # here turns a per-token remote exchange into two local forwards. ULD works on transformers
            # models (the assistant is a truncated, LoRA-merged copy of the target), hence HFLM directly.
            from memorylab.decoding.uld import ULDLM
            from memorylab.models.backends.hf import HFLM

            if backend != "hf":
                raise ValueError(f"ULD in one actor needs the 'hf' backend, got {backend!r}")
            target = HFLM.load(source, dtype=dtype, device=device, batch_size=batch_size)
            assistant = HFLM.load(assistant_source, dtype=dtype, device=device, batch_size=batch_size)
            self.lm = ULDLM(target, assistant, alpha=uld_alpha, r=uld_r)
            if speculative is not None:
                self.lm.drafter_for(speculative)
        self._sessions: dict[str, Any] = {}
        # Figures of every speculative generate call, for a report per model (the LM keeps only the last call's).
        self._drafted: Any = None
        self._drafted_seconds = 0.0

    def info(self) -> dict[str, Any]:
        import torch

        from memorylab.decoding.lockstep import LockstepULD

        lockstep = isinstance(self.lm, LockstepULD)
        models = [getattr(lm, "model", None) for lm in ((self.lm.target, self.lm.assistant) if self.assistant_source
                                                         else (self.lm.target,) if lockstep else (self.lm,))]
        params = sum(p.numel() for m in models for p in m.parameters()) if all(models) else None
        info = {"role": self.role, "source": self.source, "device": str(getattr(self.lm, "device", "")),
                "parameters": params, "threads": torch.get_num_threads()}
        if self.assistant_source or lockstep:
            info.update(assistant_source=self.assistant_source, uld_alpha=self.lm.alpha, uld_r=self.lm.r)
        if lockstep:
            info["assistant_actor"] = True
        if self.speculative is not None:
            info["speculative"] = dataclasses.asdict(self.speculative)
        return info

    def speculative_stats(self, total: bool = False) -> Optional[dict[str, float]]:
        """Acceptance rate and counts of the last generate call, when it decoded speculatively; `total`: of every
        speculative call since the actor started, with their wall time and tokens/s (prompt forwards included)."""
        if not total:
            stats = getattr(self.lm, "speculative_stats", None)
            return None if stats is None else stats.as_dict()
        if self._drafted is None:
            return None
        seconds = self._drafted_seconds
        return {**self._drafted.as_dict(), "generate_seconds": seconds,
                "tokens_per_s": self._drafted.emitted / seconds if seconds else float("nan")}

    def lm_settings(self) -> dict[str, Any]:
        """What a driver-side LogitsLM over this actor needs: the tokenizer (fast tokenizers pickle) and the
        ids and limits the scoring and decoding code reads."""
        return {"tokenizer": self.lm.tokenizer, "start_id": self.lm.start_id, "pad_id": self.lm.pad_id,
                "max_length": self.lm.max_length, "batch_size": self.lm.batch_size}

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
        return self._generating(lambda p: self.lm.generate(prompts, p), params)

    def complete(self, prompts: Sequence[str], params: GenerationParams,
                 logprobs: Optional[int] = None) -> list[Completion]:
        return self._generating(lambda p: self.lm.complete(prompts, p, logprobs), params)

    def _generating(self, run: Any, params: GenerationParams) -> Any:
        """run(params), drafting with the actor's drafter unless params name another, and its figures kept."""
        if params.speculative is None and self.speculative is not None:
            params = dataclasses.replace(params, speculative=self.speculative)
        began = time.perf_counter()
        out = run(params)
        stats = getattr(self.lm, "speculative_stats", None)
        if params.speculative is not None and stats is not None:
            self._drafted = stats if self._drafted is None else self._drafted.merged(stats)
            self._drafted_seconds += time.perf_counter() - began
        return out

    def label_logprobs(self, prompts: Sequence[str], labels: Sequence[str]) -> list[list[float]]:
        return self.lm.label_logprobs(prompts, labels)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return self.lm.count_tokens(texts)

    def clip(self, texts: Sequence[str], max_tokens: int, keep: str = "start") -> list[str]:
        return self.lm.clip(texts, max_tokens, keep)

    def sequence_logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits (B, T, V) of right-padded ids, as float32: the full-sequence primitive, for callers that
        combine this actor's logits with another's (ULD over two actors)."""
        import torch

        with torch.inference_mode():
            logits = self.lm.sequence_logits(tensor_from(input_ids), tensor_from(attention_mask))
        return logits.float().cpu().numpy()

    def step(self, session: str, input_ids: np.ndarray, attention_mask: Optional[np.ndarray] = None,
             position_ids: Optional[np.ndarray] = None) -> np.ndarray:
        """Next-token logits for a decoding session; the first call of a session starts a fresh cache.

        A mask, when given, covers the cached tokens too (past + new, as transformers expects); None means
        every token so far is real, which lets a single-row caller step without tracking the length."""
        return self._step(session, input_ids, attention_mask, position_ids).float().cpu().numpy()

    def _step(self, session: str, input_ids: np.ndarray, attention_mask: Optional[np.ndarray],
              position_ids: Optional[np.ndarray], step: Any = None) -> Any:
        """`step` with the logits as a tensor; `step` (default: the LM's next_token_logits) computes them."""
        import torch

        past = self._sessions.get(session)
        if past is None and attention_mask is not None and np.shape(attention_mask)[-1] > np.shape(input_ids)[-1]:
            # A continuation of a session this actor does not hold (ended, or begun on another replica): run as
            # a prefill of the new tokens alone it would give wrong logits or an opaque shape error.
            raise ValueError(f"decoding session {session!r} is not open in this actor: its mask covers "
                             f"{np.shape(attention_mask)[-1]} tokens but only {np.shape(input_ids)[-1]} are given")
        # inference_mode: no autograd graph is kept alive in the cache, and .numpy() works on the logits.
        with torch.inference_mode():
            logits, past = (step or self.lm.next_token_logits)(
                tensor_from(input_ids), tensor_from(attention_mask), past, tensor_from(position_ids))
        self._sessions[session] = past
        return logits

    def end_session(self, session: str) -> None:
        past = self._sessions.pop(session, None)
        end_past = getattr(self.lm, "end_past", None)  # a lockstep target: its assistant holds a cache too
        if past is not None and end_past is not None:
            end_past(past)

    def open_link(self) -> dict[str, Any]:
        """Serve `step` and `end_session` to a target's actor over a direct link (memorylab.decoding.
        assistant_link): its address, key and this actor's node (a link needs both actors on one node)."""
        import ray

        from memorylab.decoding.assistant_link import LinkServer

        self._links = {address: link for address, link in self._links.items() if link.serving}
        link = LinkServer(lambda session, *args: self._step(session, *args, step=self._lean_step()), self.end_session)
        self._links[link.address] = link
        return {"address": link.address, "authkey": link.authkey, "node_id": ray.get_runtime_context().get_node_id()}

    def _lean_step(self) -> Any:
        """LeanLlama's step over this actor's model when it runs it on CPU (far cheaper than the transformers
        forward of a small model: a link's assistant then leaves its core free sooner), else None.
        Built at the first step over a link and kept: it holds a copy of the layers' weights (which on an
        accelerator would take device memory for little gain, hence CPU only)."""
        if self._lean is None:
            from memorylab.decoding.lean_llama import LeanLlama, unsupported_reason

            model = getattr(self.lm, "model", None)
            usable = (model is not None and unsupported_reason(model) is None
                      and next(model.parameters()).device.type == "cpu")
            lean = LeanLlama(model) if usable else None
            # (next_token_logits' argument order)
            self._lean = (lambda ids, mask, past, positions: lean.step(ids, mask, positions, past)) if lean else False
        return self._lean or None

    def close_link(self, address: str) -> None:
        """Stop offering the link at `address` (a target's actor on another node steps through calls instead)."""
        link = self._links.pop(address, None)
        if link is not None:
            link.close()


def create_model_actor(role: str, source: str, spec: ModelSpec, resources: ActorResources, *, seed: int = 0,
                       batch_size: int = 32, name: Optional[str] = None, assistant_source: Optional[str] = None,
                       uld_alpha: float = 1.0, uld_r: float = 0.1, placement_group: Any = None,
                       bundle_index: int = 0, speculative: Optional[SpeculativeParams] = None,
                       assistant_actor: Any = None) -> Any:
    """Start a ModelActor with the scenario's resources (fractional GPUs allowed).

    `assistant_source` makes the actor host ULD (target minus alpha * assistant) on its own;
    `assistant_actor` (the handle of an assistant's actor) makes it host ULD's target and step in lockstep with
    that actor (memorylab.decoding.lockstep); with
    `placement_group` the actor is scheduled into that group's bundle `bundle_index` (see
    memorylab.cluster.placement: ULD's two actors share one STRICT_PACK group). `speculative` co-places a
    drafter in the actor and makes speculative decoding its default."""
    # Checked here too: inside the actor a bad role only surfaces, as an ActorDiedError, at the first call.
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    options = actor_options(resources)
    if name:
        options["name"] = name
    if placement_group is not None:
        from memorylab.cluster.placement import in_group

        options = in_group(options, placement_group, bundle_index)
    return ray.remote(ModelActor).options(**options).remote(
        role, source, backend=spec.backend, dtype=spec.dtype, device=device_for(resources, spec.device),
        batch_size=batch_size, num_threads=torch_threads(resources), seed=seed,
        assistant_source=assistant_source, uld_alpha=uld_alpha, uld_r=uld_r, speculative=speculative,
        assistant_actor=assistant_actor)
