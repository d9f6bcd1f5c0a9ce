"""ULD decoding: the target's logits minus alpha times the assistant's, with the relative-top filter.

    l = l_target - alpha * where(keep, l_assistant, 0)

`keep` (the relative-top filter) marks the tokens the target itself finds plausible: the assistant's logit
is zeroed for every token whose target log-prob is below min(max log p + log r, log p at rank floor(r*|V|))
(at least rank 1; the ULD reference's int(r*|V|)), so an implausible token keeps the target's own logit. It is
not shift-invariant: an assistant whose logits are all c lowers every kept token by alpha*c and not the others,
as in the reference (with logits near 0, as a uniform-trained assistant's are, the effect is small).

`ULDLM` is the combined model behind the LM protocol, target and assistant in one process: one forward per
model per step (each keeps its own KV cache; the pair is carried as the decoding loop's `past`). The
assistant's decoding steps run on `LeanLlama` when it can run the model: through transformers, a 1-layer
assistant's step on CPU is mostly per-call overhead, out of proportion to its one layer of arithmetic.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from memorylab.decoding.lean_llama import LeanLlama, unsupported_reason
from memorylab.models.logits_lm import LogitsLM


def check_uld_settings(alpha: float, r: float) -> None:
    """A ValueError naming the setting when alpha (the assistant's weight) or r (the filter) is out of range."""
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not 0 < r <= 1:
        raise ValueError(f"r must be in (0, 1], got {r}")


def relative_top_mask(target_logits: torch.Tensor, r: float) -> torch.Tensor:
    """Bool mask over the last (vocabulary) dimension: True where the assistant logit is KEPT.

    With log p = log_softmax(target_logits), a token is kept when log p >= min(max log p + log r, log p_(k)),
    where log p_(k) is the log-prob at rank k = max(1, floor(r * |V|)) and rank 1 is the most likely token
    (ties take any order; the value at rank k is the same). When r * |V| < 1, k = 1. The min keeps the
    larger set of the two rules: the tokens within a factor r of the top one, or the top r fraction of the
    vocabulary. r = 1 keeps every token."""
    kept = _kept(target_logits, r)
    if kept is None:
        return torch.ones(target_logits.shape, dtype=torch.bool, device=target_logits.device)
    return kept.bool()


def _kept(target_logits: torch.Tensor, r: float) -> torch.Tensor | None:
    """`relative_top_mask` as float32 1.0 (kept) / 0.0, or None when it keeps every token of every row.

    Float, not bool: on CPU, writing and reading bool tensors costs several times more, and every decoding
    step builds one. None because flat rows (an untrained or very unsure target) keep everything, and then no
    mask needs building or reading at all."""
    if not 0 < r <= 1:
        raise ValueError(f"r must be in (0, 1], got {r}")
    # log p = l - logsumexp(l) shifts a row by one constant, so comparing log-probs against a threshold
    # built from log-probs is comparing logits against the same threshold built from logits: no softmax
    # needed on this per-token path.
    logits = target_logits.float()
    vocab = logits.shape[-1]
    # The reference's int(r * |V|), at least 1; round() first so that float noise (0.7 * 10 = 6.999...) does
    # not lose a rank.
    k = min(vocab, max(1, math.floor(round(r * vocab, 9))))
    near_top = logits.amax(dim=-1, keepdim=True) + math.log(r)
    # The k-th largest value (a selection, the costly part) only matters in rows with fewer than k tokens
    # near the top: where at least k are, the k-th largest is itself >= near_top, so the min is near_top and
    # the tokens near the top are the answer. All of them, when even the least likely token is near the top.
    # (amax and amin, not aminmax: on CPU aminmax is many times slower than the two of them together.)
    if bool((logits.amin(dim=-1, keepdim=True) >= near_top).all()):
        return None
    keep = torch.ge(logits, near_top, out=torch.empty_like(logits))
    counts = keep.sum(dim=-1)
    if int(counts.min()) < k:
        rows, row_keep = logits.reshape(-1, vocab), keep.view(-1, vocab)  # any leading shape: (B, V), (B, T, V)
        ranked = (counts.flatten() < k).nonzero().flatten()
        values = rows[ranked]
        # torch.minimum, not the rank alone: a NaN row keeps nothing, as the full rule without the shortcut.
        threshold = torch.minimum(near_top.reshape(-1, 1)[ranked], _kth_largest(values, k).unsqueeze(-1))
        row_keep[ranked] = torch.ge(values, threshold, out=torch.empty_like(values))
    return keep


def _kth_largest(values: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest value along the last dimension (rank 1 = the largest).

    Decoding with a peaked target needs it every step, and on one CPU thread topk(k) costs about as much as
    the tiny assistant's whole forward. On CPU numpy's introselect (np.partition) finds the same value at a
    fraction of that cost (a selection, no sorted top k to build); it is exact, since the value at a rank
    does not depend on how ties are ordered. On an accelerator topk stays (no copy to the host)."""
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
    check_uld_settings(alpha, r)
    if target_logits.shape != assistant_logits.shape:
        raise ValueError(f"target and assistant logits differ in shape: {tuple(target_logits.shape)} vs "
                         f"{tuple(assistant_logits.shape)}")
    target = target_logits.float()
    return target if alpha == 0 else _subtract(target, assistant_logits, _kept(target, r), alpha)


def _subtract(target: torch.Tensor, assistant: torch.Tensor, kept: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """target - alpha * assistant where kept (1.0 or None: everywhere), target where not (0.0). With a mask, in
    one op: target + (-alpha) * assistant * kept gives exactly these values for finite assistant logits (a
    dropped token adds 0)."""
    assistant = assistant.to(target.device).float()
    if kept is None:  # (1 * x is x exactly: one op fewer a step for the usual alpha)
        return target - (assistant if alpha == 1 else alpha * assistant)
    return torch.addcmul(target, assistant, kept, value=-alpha)


# Below 1/4 of the vocabulary kept, gathering those head rows and scattering the result back is cheaper than
# the whole (B, hidden) x (hidden, V) head. The filter keeps at least r * |V| tokens a row, so this pays off
# with large vocabularies and small r (a 32k vocabulary at r = 0.001 keeps ~32 a row), not with the tiny
# models' 2048 at r = 0.1 (>= 205 a row, a larger union over a batch), which take the full head.
SPARSE_HEAD_BREAK_EVEN = 4


def _shared_head(target, assistant_head: torch.Tensor) -> torch.Tensor:
    """The target's output-embedding tensor when it equals the assistant's head, else the assistant's head.

    ULD's assistant keeps the target's LM head, frozen, so the two are equal; reading the target's tensor for
    both means one copy in the CPU caches instead of two, and the target's forward, which ends with its head,
    has just brought it there."""
    head = target.model.get_output_embeddings()
    weight = None if head is None else head.weight
    if (weight is not None and weight.shape == assistant_head.shape
            and weight.dtype == assistant_head.dtype and weight.device == assistant_head.device
            and torch.equal(weight, assistant_head)):
        return weight.detach()
    return assistant_head


class ULDLM(LogitsLM):
    """The LM protocol over ULD's combined logits. `target` and `assistant` are HF-backend LMs (HFLM) that
    share a tokenizer; a LoRA assistant should be merged first (`memorylab.unlearn.uld.merge_assistant`).
    Scores are the log-softmax of the combined logits; alpha = 0 gives the target exactly.

    `lean_assistant` (default) decodes with `LeanLlama` over the assistant's weights when it supports the
    model (else through transformers, as with False); scoring always goes through transformers."""

    def __init__(self, target, assistant, *, alpha: float = 1.0, r: float = 0.1, lean_assistant: bool = True) -> None:
        check_uld_settings(alpha, r)
        if target.tokenizer.get_vocab() != assistant.tokenizer.get_vocab():
            raise ValueError("target and assistant must share a tokenizer (their vocabularies differ)")
        self.target, self.assistant = target, assistant
        self.alpha, self.r = float(alpha), float(r)
        self.tokenizer = target.tokenizer
        self.device = target.device
        self.batch_size = target.batch_size
        self.start_id, self.pad_id = target.start_id, target.pad_id
        self.max_length = min(target.max_length, assistant.max_length)
        model = getattr(assistant, "model", None)
        self._lean = LeanLlama(model) if lean_assistant and unsupported_reason(model) is None else None
        self._head = None if self._lean is None else _shared_head(target, self._lean.head)

    def load_drafter(self, source: str) -> Any:
        return self.target.load_drafter(source)  # the combined model drafts with the target's tokens

    def sequence_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.combine(self.target.sequence_logits(input_ids, attention_mask),
                            self.assistant.sequence_logits(input_ids, attention_mask).to(self.device))

    def combine(self, target_logits: torch.Tensor, assistant_logits: torch.Tensor) -> torch.Tensor:
        return uld_logits(target_logits, assistant_logits, self.alpha, self.r)

    @torch.inference_mode()
    def _combine_sparse(self, target_logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """`combine` for one decoding step from the assistant's last hidden state, computing its head only for
        the vocabulary ids some row keeps: a peaked target keeps a few tokens a row, and every other
        assistant logit would be multiplied by 0. A flat target (every token kept) takes the full head."""
        target = target_logits.float()
        if self.alpha == 0:
            return target
        kept = _kept(target, self.r)
        if kept is None:  # target - alpha * head(last): the subtraction inside the matrix product
            return torch.addmm(target, last, self._head.t(), alpha=-self.alpha)
        columns = kept.amax(dim=0).nonzero().flatten()  # ids kept in at least one row
        if len(columns) * SPARSE_HEAD_BREAK_EVEN > target.shape[-1]:
            return _subtract(target, F.linear(last, self._head), kept, self.alpha)
        out = target.clone()
        out[:, columns] = torch.addcmul(target[:, columns], F.linear(last, self._head.index_select(0, columns)),
                                        kept[:, columns], value=-self.alpha)
        return out

    # -- generation ---------------------------------------------------------------------------------------
    @torch.no_grad()
    def next_token_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                          past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Combined next-token logits (B, V); `past` is the pair (target cache, assistant cache) or None."""
        t_past, a_past = (None, None) if past is None else past
        if self._lean is not None:
            # The assistant's layers first and its head last, right after the target's forward: with the
            # head the target's own tensor (see _shared_head), the product reads it while it is still cached.
            last, a_past = self._lean.step_hidden(input_ids, attention_mask, position_ids, a_past)
            t_logits, t_past = self.target.next_token_logits(input_ids, attention_mask, t_past, position_ids)
            return self._combine_sparse(t_logits, last), (t_past, a_past)
        t_logits, t_past = self.target.next_token_logits(input_ids, attention_mask, t_past, position_ids)
        a_logits, a_past = self.assistant.next_token_logits(input_ids, attention_mask, a_past, position_ids)
        return self.combine(t_logits, a_logits), (t_past, a_past)

    @torch.no_grad()
    def verify_logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                      past: Any = None, position_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        """Combined logits at every new position (B, T, V), target and assistant one forward each over the
        drafted tokens (speculative decoding); the relative-top filter is applied per position."""
        t_past, a_past = (None, None) if past is None else past
        t_logits, t_past = self.target.verify_logits(input_ids, attention_mask, t_past, position_ids)
        if self._lean is not None:
            hidden, a_past = self._lean.step_hidden(input_ids, attention_mask, position_ids, a_past,
                                                    every_position=True)
            a_logits = F.linear(hidden, self._head)
        else:
            a_logits, a_past = self.assistant.verify_logits(input_ids, attention_mask, a_past, position_ids)
        return self.combine(t_logits, a_logits), (t_past, a_past)
