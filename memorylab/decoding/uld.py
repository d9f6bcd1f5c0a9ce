"""ULD decoding: the target's logits minus alpha times the assistant's, with the relative-top filter.

    l = l_target - alpha * where(keep, l_assistant, 0)

`keep` (the relative-top filter) marks the tokens the target itself finds plausible: the assistant's logit
is zeroed for every token whose target log-prob is below min(max log p + log r, log p at rank ceil(r*|V|)),
so subtracting the assistant can demote what the target would say but cannot promote an implausible token.

`ULDLM` is the combined model behind the LM protocol, target and assistant in one process: one forward per
model per step (each keeps its own KV cache; the pair is carried as the decoding loop's `past`).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from memorylab.models.logits_lm import LogitsLM


def _check(alpha: float, r: float) -> None:
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not 0 < r <= 1:
        raise ValueError(f"r must be in (0, 1], got {r}")


def relative_top_mask(target_logits: torch.Tensor, r: float) -> torch.Tensor:
    """Bool mask over the last (vocabulary) dimension: True where the assistant logit is KEPT.

    With log p = log_softmax(target_logits), a token is kept when log p >= min(max log p + log r, log p_(k)),
    where log p_(k) is the log-prob at rank k = max(1, ceil(r * |V|)) and rank 1 is the most likely token
    (ties take any order; the value at rank k is the same). When r * |V| < 1, k = 1. The min keeps the
    larger set of the two rules: the tokens within a factor r of the top one, or the top r fraction of the
    vocabulary. r = 1 keeps every token."""
    if not 0 < r <= 1:
        raise ValueError(f"r must be in (0, 1], got {r}")
    # log p = l - logsumexp(l) shifts a row by one constant, so comparing log-probs against a threshold
    # built from log-probs is comparing logits against the same threshold built from logits: no softmax
    # needed on this per-token path.
    logits = target_logits.float()
    vocab = logits.shape[-1]
    # round() first so that e.g. 0.3 * 10 = 3.0000000000000004 counts as rank 3, not 4.
    k = min(vocab, max(1, math.ceil(round(r * vocab, 9))))
    threshold = torch.minimum(logits.amax(dim=-1) + math.log(r), _kth_largest(logits, k))
    return logits >= threshold.unsqueeze(-1)


def _kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest value along the last dimension (rank 1 = the largest).

    This runs every decoding step, and it was the hot spot of ULD decoding on CPU: topk(k) of a (32, 2048)
    block costs ~0.8 ms on one thread, as much as a quarter of the tiny assistant's whole forward. On CPU
    numpy's introselect (np.partition) finds the same value in ~0.35 ms; it is exact, since the value at a
    rank does not depend on how ties are ordered. On an accelerator topk stays (no copy to the host)."""
    vocab = values.shape[-1]
    if k == 1:
        return values.amax(dim=-1)
    if k == vocab:
        return values.amin(dim=-1)
    if values.device.type == "cpu" and values.dtype == torch.float32 and not values.requires_grad:
        import numpy as np

        arr = values.detach().numpy()
        if not np.isnan(arr).any():  # numpy orders NaN last, topk first: leave such rows to topk
            return torch.from_numpy(np.partition(arr, vocab - k, axis=-1)[..., vocab - k])
    return values.topk(k, dim=-1).values[..., -1]


def uld_logits(target_logits: torch.Tensor, assistant_logits: torch.Tensor, alpha: float, r: float) -> torch.Tensor:
    """target - alpha * where(relative_top_mask(target, r), assistant, 0), in float32."""
    _check(alpha, r)
    if target_logits.shape != assistant_logits.shape:
        raise ValueError(f"target and assistant logits differ in shape: {tuple(target_logits.shape)} vs "
                         f"{tuple(assistant_logits.shape)}")
    target = target_logits.float()
    assistant = assistant_logits.to(target.device).float()
    if alpha == 0:
        return target
    keep = relative_top_mask(target, r)
    return target - alpha * torch.where(keep, assistant, torch.zeros_like(assistant))


class ULDLM(LogitsLM):
    """The LM protocol over ULD's combined logits. `target` and `assistant` are HF-backend LMs (HFLM) that
    share a tokenizer; a LoRA assistant should be merged first (`memorylab.unlearn.uld.merge_assistant`).
    Scores are the log-softmax of the combined logits; alpha = 0 gives the target exactly."""

    def __init__(self, target, assistant, *, alpha: float = 1.0, r: float = 0.1) -> None:
        _check(alpha, r)
        if target.tokenizer.get_vocab() != assistant.tokenizer.get_vocab():
            raise ValueError("target and assistant must share a tokenizer (their vocabularies differ)")
        self.target, self.assistant = target, assistant
        self.alpha, self.r = float(alpha), float(r)
        self.tokenizer = target.tokenizer
        self.device = target.device
        self.batch_size = target.batch_size
        self.start_id, self.pad_id = target.start_id, target.pad_id
        self.max_length = min(target.max_length, assistant.max_length)

    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.combine(self.target.sequence_logits(input_ids, attention_mask),
                            self.assistant.sequence_logits(input_ids, attention_mask).to(self.device))

    def combine(self, target_logits: torch.Tensor, assistant_logits: torch.Tensor) -> torch.Tensor:
        return uld_logits(target_logits, assistant_logits, self.alpha, self.r)

    # -- generation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Combined next-token logits (B, V); `past` is the pair (target cache, assistant cache) or None."""
        t_past, a_past = (None, None) if past is None else past
        t_logits, t_past = self.target.next_token_logits(input_ids, attention_mask, t_past, position_ids)
        a_logits, a_past = self.assistant.next_token_logits(input_ids, attention_mask, a_past, position_ids)
        return self.combine(t_logits, a_logits.to(t_logits.device)), (t_past, a_past)
