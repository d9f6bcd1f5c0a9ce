"""ULD over two actors stepping in lockstep: target and assistant each in their own ModelActor.

Both actors belong to one placement group (memorylab.cluster.placement; STRICT_PACK by default), since every
generated token needs both models' logits. The target's actor hosts this LM (ModelActor(assistant_actor=...))
and drives the decoding loop itself: each step it sends the ids to the assistant's actor over a direct link
(memorylab.decoding.assistant_link), runs its own forward meanwhile, then combines the assistant's logits with
its own (`uld_logits`). The two forwards overlap on two cores (or devices) and no call goes through the
driver per token; each actor keeps its own KV cache, the assistant's under a session id per batch.

One actor hosting both (ModelActor(assistant_source=...), `ULDLM`) needs one core and no link; two actors
need two, and decode faster when they have them (bench/uld_decode.py measures both).
"""

from __future__ import annotations

import uuid
from typing import Any

import ray
import torch

from memorylab.arrays import array_from, tensor_from
from memorylab.decoding.assistant_link import connect
from memorylab.decoding.uld import check_uld_settings, uld_logits
from memorylab.models.logits_lm import LogitsLM
from memorylab.models.protocol import GenerationParams


class LockstepULD(LogitsLM):
    """The LM protocol over ULD's combined logits: `target` an HFLM in this process, `assistant` the handle
    of the ModelActor that hosts the assistant. The link to it opens at the first use."""

    def __init__(self, target: Any, assistant: Any, *, alpha: float = 1.0, r: float = 0.1) -> None:
        check_uld_settings(alpha, r)
        settings = ray.get(assistant.lm_settings.remote())
        if target.tokenizer.get_vocab() != settings["tokenizer"].get_vocab():
            raise ValueError("target and assistant must share a tokenizer (their vocabularies differ)")
        self.target, self.assistant = target, assistant
        self.alpha, self.r = float(alpha), float(r)
        self.tokenizer = target.tokenizer
        self.device = target.device
        self.batch_size = target.batch_size
        self.start_id, self.pad_id = target.start_id, target.pad_id
        self.max_length = min(target.max_length, settings["max_length"])
        self._link: Any = None
        self._open: list[str] = []  # the assistant's sessions of the generate() call in progress

    @property
    def link(self) -> Any:
        if self._link is None:
            self._link = connect(self.assistant)
        return self._link

    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        pending = self.assistant.sequence_logits.remote(array_from(input_ids), array_from(attention_mask))
        target = self.target.sequence_logits(input_ids, attention_mask)
        assistant = ray.get(pending)
        return uld_logits(target, tensor_from(assistant).to(target.device), self.alpha, self.r)

    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Combined next-token logits (B, V); `past` is (the target's cache, the assistant's session id)."""
        t_past, session = (None, uuid.uuid4().hex) if past is None else past
        if past is None:
            self._open.append(session)
        # The assistant's step first: it runs on its own core while the target's forward runs on this one.
        link = self.link
        link.send_step(session, array_from(input_ids), array_from(attention_mask), array_from(position_ids))
        try:
            t_logits, t_past = self.target.next_token_logits(input_ids, attention_mask, t_past, position_ids)
        finally:  # the answer is read even when the target failed, so the next step does not read it instead
            a_logits = link.receive()
        return uld_logits(t_logits, a_logits.to(t_logits.device), self.alpha, self.r), (t_past, session)

    def _decode(self, rows: list[list[int]], params: GenerationParams, stops: list[int],
                generator: Any = None) -> list[list[int]]:
        # The decoding loop never says when a batch is done, so the caches a batch opened in the assistant are
        # dropped after it: kept to the end of generate(), every batch's cache would stay there at once.
        first = len(self._open)
        try:
            return super()._decode(rows, params, stops, generator)
        finally:  # only this batch's: a caller stepping on its own (ModelActor.step) ends its sessions itself
            opened, self._open[first:] = self._open[first:], []
            for session in opened if self._link is not None else ():  # (no link: nothing was opened there)
                self._link.end(session)

    def end_past(self, past: Any) -> None:
        """Drop the assistant's cache of a decoding session (`past` as next_token_logits returned it)."""
        session = past[1]
        if session in self._open:
            self._open.remove(session)
            if self._link is not None:
                self._link.end(session)

    def close(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None
