"""MUSE PrivLeak: MIA AUC on forget-vs-holdout, relative to a model retrained without the forget set.

~0 means the unlearned model leaks as little as the retrained one; large positive values mean
under-unlearning (forget set still detectable), large negative values over-unlearning.
"""
from __future__ import annotations

import math
from numbers import Real


def privleak(auc_model: float, auc_retrain: float) -> float:
    """(AUC_model - AUC_retrain) / AUC_retrain * 100, in percent."""
    for name, v in (("auc_model", auc_model), ("auc_retrain", auc_retrain)):
        if not (isinstance(v, Real) and math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be an AUC in [0, 1], got {v!r}.")
    if auc_retrain <= 0:
        raise ValueError("auc_retrain must be positive; PrivLeak divides by it.")
    return (auc_model - auc_retrain) / auc_retrain * 100.0
