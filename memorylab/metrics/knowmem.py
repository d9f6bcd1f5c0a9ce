"""MUSE KnowMem: whether the model still answers questions about the forget set.

Questions are asked with a fixed few-shot prompt, the free-form generation is cut to its first
answer, and scored against the gold answer with ROUGE-L F1 (higher = more knowledge retained).
"""
from __future__ import annotations

from typing import Sequence

from memorylab.metrics._checks import paired_texts
from memorylab.metrics.rouge import mean_rouge_l_f1


def clean_answer(generation: str) -> str:
    """Keep only the first answer: models continue the few-shot pattern with more Q/A pairs."""
    cut = len(generation)
    for stop in ("\n", "Question:"):
        i = generation.find(stop)
        if i != -1:
            cut = min(cut, i)
    return generation[:cut].strip()


def knowmem(generations: Sequence[str], answers: Sequence[str]) -> float:
    """Mean ROUGE-L F1 of cleaned generations vs gold answers, in [0, 1]."""
    gens, golds = paired_texts(generations, answers, ("generations", "answers"))
    return mean_rouge_l_f1([clean_answer(g) for g in gens], golds)
