"""ULD over two actors stepping in lockstep: target and assistant each in their own ModelActor.

For pairs that do not fit one device. Both actors belong to one STRICT_PACK placement group
(memorylab.cluster.placement), since every generated token needs both actors' logits: each step sends the
same ids to both actors at once (two .remote() calls, then one ray.get, so the forwards overlap) and
combines the logits here with `uld_logits`. The KV caches stay inside the actors, keyed by a session id per
actor; only logits travel. When the pair fits one device, one ModelActor hosting both (assistant_source=...)
skips the per-token remote calls altogether: see bench/uld_decode.py for which is faster.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np
import ray
import torch

from memorylab.decoding.uld import _check, uld_logits
from memorylab.models.logits_lm import LogitsLM
from memorylab.models.protocol import GenerationParams


def _np(t: Any) -> Any:
    return None if t is None else np.asarray(t.cpu() if isinstance(t, torch.Tensor) else t)


def _tensor(a: np.ndarray) -> torch.Tensor:
    # Ray hands numpy results back read-only (zero-copy from the object store); torch wants writable memory.
    return torch.from_numpy(a if a.flags.writeable else a.copy())


class LockstepULD(LogitsLM):
    """The LM protocol over ULD's combined logits, target and assistant in two ModelActor handles."""

    def __init__(self, target: Any, assistant: Any, *, alpha: float = 1.0, r: float = 0.1) -> None:
        _check(alpha, r)
        t_set, a_set = ray.get([target.lm_settings.remote(), assistant.lm_settings.remote()])
        if t_set["tokenizer"].get_vocab() != a_set["tokenizer"].get_vocab():
            raise ValueError("target and assistant must share a tokenizer (their vocabularies differ)")
        self.target, self.assistant = target, assistant
        self.alpha, self.r = float(alpha), float(r)
        self.tokenizer = t_set["tokenizer"]
        self.device = torch.device("cpu")  # the combination happens here, on the driver
        self.batch_size = t_set["batch_size"]
        self.start_id, self.pad_id = t_set["start_id"], t_set["pad_id"]
        self.max_length = min(t_set["max_length"], a_set["max_length"])
        self._open: list[str] = []  # sessions of the generate() call in progress

    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        ids, mask = _np(input_ids), _np(attention_mask)
        t, a = ray.get([self.target.sequence_logits.remote(ids, mask),
                        self.assistant.sequence_logits.remote(ids, mask)])
        return uld_logits(_tensor(t), _tensor(a), self.alpha, self.r)

    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Combined next-token logits (B, V); `past` is one session id (None starts one), used by both
        actors: each keeps its own cache under it."""
        session = past or uuid.uuid4().hex
        if past is None:
            self._open.append(session)
        args = (session, _np(input_ids), _np(attention_mask), _np(position_ids))
        t, a = ray.get([self.target.step.remote(*args), self.assistant.step.remote(*args)])
        return uld_logits(_tensor(t), _tensor(a), self.alpha, self.r), session

    def end_session(self, session: str) -> None:
        ray.get([self.target.end_session.remote(session), self.assistant.end_session.remote(session)])

    def _decode(self, rows: list[list[int]], params: GenerationParams, stops: list[int],
                generator: Any = None) -> list[list[int]]:
        # The decoding loop never says when a batch is done, so the caches a batch opened are dropped after it:
        # kept to the end of generate(), every batch's cache stayed in both actors at once.
        try:
            return super()._decode(rows, params, stops, generator)
        finally:
            opened, self._open = self._open, []
            for session in opened:
                self.end_session(session)
