"""The figures a memorization or unlearning report holds for each model: one list, in report order, with the
part of an evaluation that measures each, and which way is better.

`goal` is the direction for a model that was made to forget: "lower" (less of the forget set recalled),
"higher" (more of the rest kept), "zero" (PrivLeak: the forget set looks like never-seen data, neither more
nor less likely), "half" (an MIA AUC of 0.5: members cannot be told from non-members). A memorization report
reads the same figures the other way round: there a high VerbMem is what it shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Literal, Optional


@dataclass(frozen=True)
class Figure:
    name: str
    part: str  # the part of memorylab.evaluation.evaluate that measures it
    goal: Literal["lower", "higher", "zero", "half"]
    what: str
    tofu: bool = False  # measured only on TOFU data (truth ratios)
    compared: bool = False  # computed against the retrain model, not measured on the model alone
    world: bool = False  # measured only on the synthetic world (it marks its facts' values; TOFU does not)


FIGURES: tuple[Figure, ...] = (
    Figure("verbmem_forget", "verbmem", "lower", "MUSE VerbMem: ROUGE-L F1 of greedy continuations of forget texts"),
    Figure("knowmem_forget", "knowmem_forget", "lower", "MUSE KnowMem: ROUGE-L F1 of answers about forget people"),
    Figure("knowmem_retain", "knowmem_retain", "higher", "MUSE KnowMem on the retain people: the utility kept"),
    Figure("mia_auc_forget_holdout", "mia", "half", "ROC AUC of Min-K% Prob, forget (members) vs holdout"),
    Figure("privleak", "mia", "zero", "MUSE PrivLeak: the MIA AUC relative to the retrain model's, in %",
           compared=True),
    Figure("canary_exposure_mean", "canaries", "lower", "mean exposure of the planted canaries, in bits"),
    Figure("ppl_holdout", "ppl", "lower", "perplexity on the never-trained holdout texts"),
    Figure("ppl_forget_context", "context", "lower", "perplexity of the forget texts around their facts' values "
           "(the values unscored): what span-level unlearning must keep", world=True),
    Figure("mia_auc_min_k_pp", "mia", "half", "ROC AUC of Min-K%++, forget vs holdout"),
    Figure("mia_auc_loss", "mia", "half", "ROC AUC of the loss attack, forget vs holdout"),
    Figure("mia_auc_zlib", "mia", "half", "ROC AUC of the zlib-normalised loss attack, forget vs holdout"),
    Figure("truth_ratio_forget", "truth", "higher", "TOFU truth ratio on forget: 1 = no preference for the truth",
           tofu=True),
    Figure("truth_ratio_retain", "truth", "higher", "TOFU truth ratio on retain: higher prefers the truth",
           tofu=True),
    Figure("forget_quality", "truth", "higher", "TOFU forget quality: KS-test p-value against the retrain model",
           tofu=True, compared=True),
)
BY_NAME: dict[str, Figure] = {f.name: f for f in FIGURES}
NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES)
WORLD_NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES if not f.tofu)  # what a world report has
COMMON_NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES if not f.tofu and not f.world)  # what every one has
TOFU_NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES if f.tofu)


def names(tofu: bool) -> tuple[str, ...]:
    """The figures a report of world (tofu False) or TOFU data holds for each model, in report order."""
    return tuple(f.name for f in FIGURES if not f.world) if tofu else WORLD_NAMES


def in_order(figures: dict[str, float]) -> dict[str, float]:
    """`figures` restricted to the catalog's, in report order."""
    return {name: figures[name] for name in NAMES if name in figures}


def parts_for(wanted: Optional[Collection[str]]) -> set[str]:
    """The evaluation parts that measure any of the `wanted` figures (None: every part)."""
    return {f.part for f in FIGURES if wanted is None or f.name in wanted}


def best(values: dict[str, Optional[float]], figure: str) -> Optional[str]:
    """The key whose value is best for `figure` by its goal (None when no value is known)."""
    known = {k: v for k, v in values.items() if v is not None}
    if not known:
        return None
    goal = BY_NAME[figure].goal
    if goal == "higher":
        return max(known, key=known.__getitem__)
    target = {"lower": float("-inf"), "zero": 0.0, "half": 0.5}[goal]
    return min(known, key=lambda k: known[k] if goal == "lower" else abs(known[k] - target))
