"""The figures of a memorization report, apart from the runner so that checking a sweep imports no Ray."""

from __future__ import annotations

from typing import Any

METRICS = ("verbmem_forget", "knowmem_forget", "knowmem_retain", "mia_auc_forget_holdout", "privleak",
           "canary_exposure_mean", "ppl_holdout", "mia_auc_min_k_pp", "mia_auc_loss", "mia_auc_zlib")
MODELS = ("target", "retrain")


def report_fields(scenario: Any) -> set[str]:
    return ({f"models.{m}.{k}" for m in MODELS for k in METRICS}
            | {f"training.{m}.{k}" for m in MODELS for k in ("steps", "final_loss")} | {"timings_s.total"})
