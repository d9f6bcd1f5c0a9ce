"""The drafter of speculative decoding at decoding time: a small causal LM that shares the target's tokenizer.

`Drafter` steps like a decoding loop's step function and returns logits over its (possibly VocabTrim-trimmed)
vocabulary plus the map back to target ids. It runs on `LeanLlama` when it can (a drafter steps gamma times a
round, so its per-step overhead matters more than its arithmetic), else through its backend. `drafter_for`
gives the drafter a `SpeculativeParams` names, loaded once (by the model's own `load_drafter`) into the process
of the model that generates: co-placed with its target, on the target's device, no per-token remote call.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from memorylab.decoding.lean_llama import LeanLlama, unsupported_reason
from memorylab.decoding.vocabtrim import kept_ids


class Drafter:
    """`step(ids, mask, positions, past) -> (logits (B, N), past)`; column j is target id `token_ids[j]`
    (None: column j is id j, the whole vocabulary). `lm` is the drafter as an LM-protocol backend (HFLM)."""

    def __init__(self, lm: Any, *, keep: Optional[torch.Tensor] = None, counts: Optional[np.ndarray] = None,
                 lean: Any = True) -> None:
        self.lm = lm  # an HFLM: tokenizer, device and the transformers fallback
        self.counts = counts
        # `lean` may be a LeanLlama to share (trimmed variants of one drafter reuse its packed weights).
        if lean is True:
            lean = LeanLlama(lm.model) if unsupported_reason(lm.model) is None else None
        self._lean = lean or None
        self.token_ids = None if keep is None else keep.to(lm.device)
        head = lm.model.get_output_embeddings().weight.detach()
        # A trimmed head is its own contiguous copy: index_select every step would cost more than it saves.
        self.head = head if keep is None else head.index_select(0, self.token_ids).contiguous()

    def trimmed(self, vocab: int) -> "Drafter":
        """This drafter with its head over the `vocab` most frequent tokens (EOS always among them)."""
        if self.counts is None:
            raise ValueError("VocabTrim needs token counts: load a drafter saved with token_counts.json or set "
                             "drafter.counts (memorylab.decoding.vocabtrim.corpus_counts / generation_counts)")
        if vocab >= len(self.counts):
            return self
        keep = kept_ids(self.counts, vocab, always=[self.lm.tokenizer.eos_token_id])
        return Drafter(self.lm, keep=keep, counts=self.counts, lean=self._lean or False)

    @property
    def vocab_size(self) -> int:
        return int(self.head.shape[0])

    @torch.inference_mode()
    def step(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
             past: Any) -> tuple[torch.Tensor, Any]:
        if self._lean is not None:
            last, past = self._lean.step_hidden(input_ids, attention_mask, position_ids, past)
            return F.linear(last, self.head), past
        logits, past = self.lm.next_token_logits(input_ids, attention_mask, past, position_ids)
        return (logits if self.token_ids is None else logits.index_select(-1, self.token_ids)), past


def drafter_for(lm: Any, spec: Any) -> Drafter:
    """The drafter `spec` (SpeculativeParams) names for `lm`, loaded once and kept on the LM: `spec.drafter`
    a folder or HF id, or None for the one attached as `lm.drafter`; `spec.vocab` trims its head."""
    cache = lm.__dict__.setdefault("_drafters", {})
    if spec.drafter is None and lm.drafter is None:
        raise ValueError("speculative generation needs a drafter: name one (SpeculativeParams(drafter=PATH)) "
                         "or attach one (lm.drafter = memorylab.models.backends.hf.load_drafter(PATH))")
    # An attached drafter is keyed by identity: attaching another one must not reuse the old one's trim.
    key = (spec.drafter or id(lm.drafter), spec.vocab)
    if key not in cache:
        if spec.drafter is None:
            base = lm.drafter
        else:
            base = cache.get((spec.drafter, None)) or lm.load_drafter(spec.drafter)
            cache[(spec.drafter, None)] = base
        if base.lm.tokenizer.get_vocab() != lm.tokenizer.get_vocab():
            raise ValueError(f"the drafter {spec.drafter or '(attached)'} does not share the model's tokenizer")
        cache[key] = base if spec.vocab is None else base.trimmed(spec.vocab)
    return cache[key]
