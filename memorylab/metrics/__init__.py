"""Pure metric functions over token log-probs and texts (no torch, no Ray, no models).

Sign conventions: ROUGE-based scores (VerbMem, KnowMem) are in [0, 1], higher = more memorized;
MIA scores are higher = more likely a member; exposure takes log-perplexities (lower = more likely).
"""
from memorylab.metrics.exposure import exposure, exposure_upper_bound
from memorylab.metrics.knowmem import clean_answer, knowmem
from memorylab.metrics.mia import (
    loss_score,
    mia_auc,
    min_k_plus_plus_score,
    min_k_score,
    zlib_score,
)
from memorylab.metrics.perplexity import perplexity
from memorylab.metrics.privleak import privleak
from memorylab.metrics.rouge import mean_rouge_l_f1, rouge_l_f1
from memorylab.metrics.tofu import forget_quality, truth_ratio, truth_ratio_score, truth_ratios
from memorylab.metrics.verbmem import split_prefix, verbmem

__all__ = [
    "clean_answer",
    "exposure",
    "exposure_upper_bound",
    "knowmem",
    "loss_score",
    "mean_rouge_l_f1",
    "mia_auc",
    "min_k_plus_plus_score",
    "min_k_score",
    "perplexity",
    "privleak",
    "rouge_l_f1",
    "split_prefix",
    "verbmem",
    "zlib_score",
    "forget_quality",
    "truth_ratio",
    "truth_ratio_score",
    "truth_ratios",
]
