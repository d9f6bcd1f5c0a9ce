"""MUSE VerbMem: how much of a forget-set passage the model reproduces verbatim.

The model is prompted with the first `prefix_tokens` tokens of a passage, decodes greedily, and
its continuation is compared with the true continuation by ROUGE-L F1 (higher = more memorized).
"""
from __future__ import annotations

from typing import Sequence

from memorylab.metrics.rouge import mean_rouge_l_f1


def split_prefix(token_ids: Sequence[int], prefix_tokens: int) -> tuple[list[int], list[int]]:
    """Split a tokenized passage into (prompt prefix, ground-truth continuation)."""
    if prefix_tokens < 1:
        raise ValueError(f"prefix_tokens must be at least 1, got {prefix_tokens}.")
    ids = list(token_ids)
    # An empty continuation would leave nothing to compare against.
    if len(ids) <= prefix_tokens:
        raise ValueError(
            f"passage has {len(ids)} tokens, which is not longer than the {prefix_tokens}-token prefix.")
    return ids[:prefix_tokens], ids[prefix_tokens:]


def verbmem(continuations: Sequence[str], truths: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of greedy continuations vs true continuations, in [0, 1]."""
    return mean_rouge_l_f1(continuations, truths)
