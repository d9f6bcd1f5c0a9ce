"""MUSE PrivLeak: MIA AUC on forget-vs-holdout, relative to a model retrained without the forget set.

MUSE (Shi et al. 2024) computes the AUC with the forget set labelled 0 and the holdout 1, so a model that still
remembers its forget set gets an AUC near 0 there. memorylab reports MIA AUCs the usual way (members labelled
1: a remembering model near 1, `mia_auc_forget_holdout`), and turns them into MUSE's AUC (1 - AUC) here, so
PrivLeak has MUSE's sign and size: ~0 means the unlearned model leaks as little as the retrained one; large
negative values mean under-unlearning (the forget set is still told apart: the target itself is near -100),
large positive values over-unlearning (the forget set stands out by being too unlikely).
"""
from __future__ import annotations

import math
from numbers import Real


def privleak(auc_model: float, auc_retrain: float) -> float:
    """MUSE's (AUC'_model - AUC'_retrain) / AUC'_retrain * 100, in percent, where AUC' = 1 - AUC is the AUC with
    MUSE's labels and the arguments are AUCs with members (the forget set) labelled 1."""
    for name, v in (("auc_model", auc_model), ("auc_retrain", auc_retrain)):
        if not (isinstance(v, Real) and math.isfinite(v) and 0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be an AUC in [0, 1], got {v!r}.")
    if auc_retrain >= 1:
        raise ValueError("auc_retrain must be below 1; PrivLeak divides by 1 - auc_retrain (MUSE's AUC).")
    return (auc_retrain - auc_model) / (1.0 - auc_retrain) * 100.0
