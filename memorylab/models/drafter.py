"""The drafter of speculative decoding: a small causal LM that shares the target's tokenizer.

Runtime: `Drafter` steps like a decoding loop's step function and returns logits over its (possibly
VocabTrim-trimmed) vocabulary plus the map back to target ids. It runs on `LeanLlama` when it can (a
drafter steps gamma times a round, so its per-step overhead matters more than its arithmetic), else through
transformers. `drafter_for` loads the drafter a `SpeculativeParams` names once into the process of the
model that generates: co-placed with its target, on the target's device, no per-token remote call.

Training (the tiny world): a 1-2 layer tiny Llama trained on the target's corpus, optionally plus the
target's own greedy continuations (distillation: what the drafter must predict is what the target says),
saved like any model, with its token counts for VocabTrim.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from memorylab.decoding.lean_llama import LeanLlama, unsupported_reason
from memorylab.decoding.vocabtrim import corpus_counts, kept_ids, load_counts, save_counts


class Drafter:
    """`step(ids, mask, positions, past) -> (logits (B, N), past)`; column j is target id `token_ids[j]`
    (None: column j is id j, the whole vocabulary)."""

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

    @classmethod
    def load(cls, source: str, *, vocab: Optional[int] = None, device: str | torch.device = "cpu",
             dtype: str = "float32") -> "Drafter":
        from memorylab.models.backends.hf import HFLM

        lm = HFLM.load(source, dtype=dtype, device=str(device))
        counts = load_counts(source) if Path(source, "token_counts.json").exists() else None
        drafter = cls(lm, counts=counts)
        return drafter if vocab is None else drafter.trimmed(vocab)

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
                         "or attach one (lm.drafter = Drafter.load(PATH))")
    # An attached drafter is keyed by identity: attaching another one must not reuse the old one's trim.
    key = (spec.drafter or id(lm.drafter), spec.vocab)
    if key not in cache:
        if spec.drafter is None:
            base = lm.drafter
        else:
            base = cache.get((spec.drafter, None)) or Drafter.load(spec.drafter, device=lm.device,
                                                                   dtype=_dtype_name(lm))
            cache[(spec.drafter, None)] = base
        if base.lm.tokenizer.get_vocab() != lm.tokenizer.get_vocab():
            raise ValueError(f"the drafter {spec.drafter or '(attached)'} does not share the model's tokenizer")
        cache[key] = base if spec.vocab is None else base.trimmed(spec.vocab)
    return cache[key]


def _dtype_name(lm: Any) -> str:
    model = getattr(lm, "model", None) or getattr(getattr(lm, "target", None), "model", None)
    dtype = next(model.parameters()).dtype if model is not None else torch.float32
    return {torch.bfloat16: "bfloat16", torch.float16: "float16"}.get(dtype, "float32")


# -- training the tiny drafter ----------------------------------------------------------------------------

def drafter_config(target_cfg: Any, num_layers: int = 1, hidden_size: Optional[int] = None) -> Any:
    """A tiny drafter's config: the target's vocabulary and context, `num_layers` layers, and by default the
    target's width (a drafter costs its layers, and one layer is far cheaper than the target's several)."""
    hidden = hidden_size or target_cfg.hidden_size
    heads = target_cfg.num_heads if hidden % target_cfg.num_heads == 0 else 1
    return target_cfg.model_copy(update=dict(num_layers=num_layers, hidden_size=hidden, num_heads=heads,
                                             num_kv_heads=None, intermediate_size=3 * hidden))


def distill_documents(lm: Any, prompts: Sequence[str], max_new_tokens: int = 48) -> list[str]:
    """Each prompt followed by the target's greedy continuation: documents that teach a drafter what the
    target says, not only what the corpus says."""
    from memorylab.models.protocol import GenerationParams

    outputs = lm.generate(list(prompts), GenerationParams(max_new_tokens=max_new_tokens))
    return [p + o for p, o in zip(prompts, outputs)]


def train_drafter(tokenizer: Any, documents: Sequence[str], cfg: Any, train: Any, out_dir: Path, *, seed: int = 0,
                  count_texts: Optional[Sequence[str]] = None, show_progress: bool = True) -> Path:
    """Build a tiny drafter (`cfg`, a TinyModelConfig, e.g. from drafter_config), train it on `documents`
    with the project's trainer, save it with the token counts of `count_texts` (default: the documents) for
    VocabTrim, and return its folder (out_dir/final)."""
    from memorylab.models.tiny import build_tiny_model
    from memorylab.models.trainer import train_causal_lm

    model = build_tiny_model(cfg, tokenizer, seed)
    final = train_causal_lm(model, tokenizer, documents, train, Path(out_dir), seed, desc="train drafter",
                            show_progress=show_progress).final_dir
    counted = documents if count_texts is None else count_texts
    save_counts(final, corpus_counts(tokenizer, counted), "corpus" if count_texts is None else "given texts")
    return final
