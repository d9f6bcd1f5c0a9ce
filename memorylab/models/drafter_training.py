"""Training a speculative-decoding drafter for the tiny world: a 1-2 layer tiny Llama trained on the target's
corpus, optionally plus the target's own greedy continuations (distillation: what the drafter must predict is
what the target says), saved like any model, with its token counts for VocabTrim. The drafter at decoding time
is memorylab/decoding/drafter.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from memorylab.decoding.vocabtrim import corpus_counts, save_counts


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
