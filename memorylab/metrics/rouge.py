"""ROUGE-L F1, the text-overlap measure behind MUSE VerbMem and KnowMem.

Delegates to Google's `rouge-score` so numbers match the published benchmarks; its default
tokenizer lowercases and keeps only [a-z0-9] runs (text with no such characters scores 0).
No stemming, as in MUSE.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from rouge_score import rouge_scorer

from memorylab.metrics._checks import paired_texts


@lru_cache(maxsize=1)
def _scorer() -> rouge_scorer.RougeScorer:
    # Built once: construction is cheap but the metric is called per sample in loops.
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (LCS-based) of `prediction` against `reference`, in [0, 1]."""
    if not isinstance(prediction, str) or not isinstance(reference, str):
        raise TypeError("prediction and reference must be strings.")
    # rouge-score's signature is score(target, prediction): reference first.
    return float(_scorer().score(reference, prediction)["rougeL"].fmeasure)


def mean_rouge_l_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Unweighted mean of per-pair ROUGE-L F1 (each sample counts once, as in MUSE)."""
    preds, refs = paired_texts(predictions, references, ("predictions", "references"))
    return sum(rouge_l_f1(p, r) for p, r in zip(preds, refs)) / len(preds)
