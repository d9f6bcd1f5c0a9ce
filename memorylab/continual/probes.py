"""Retention probes: few-shot memories inserted at a known step, then tracked as training goes on.

After "Recognition, recall, and retention of few-shot memories in large language models": a fact seen once
(or n times) is at first both *recognized* (the model tells it from facts it never saw) and, less often,
*recalled* (the model produces it when asked); as training continues on other data, recall fades much faster
than recognition.

A probe is one question–answer pair about a person nobody else mentions. Each group of probes is inserted
`repeats` times, `spacing` steps apart, from step `insert_at` on, as extra rows packed on top of that step's
batch (the same rows in every arm, so arms keep equal compute among themselves). A control group of the same
size is never inserted: the unseen facts recognition is measured against.

- recognition: ROC AUC of probe vs control texts, scored by their mean token log-prob *minus the same
  text's at step 0* (a reference-calibrated membership score), so the texts' own difficulty cancels and
  0.5 is chance;
- recall: KnowMem (ROUGE-L F1 of the few-shot prompted answer) on the probes' questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Collection, Optional, Sequence

from memorylab.data import QA
from memorylab.data.prompts import qa_document
from memorylab.data.seeding import rng_for
from memorylab.models.trainer import packed_rows

# Below these rises over chance (recognition) or over the pre-insertion level (recall) a memory is not
# measurable with a few dozen probes, and a retained fraction of it would be noise.
RECOGNITION_RISE = 0.1
RECALL_RISE = 0.05


@dataclass(frozen=True)
class ProbeGroup:
    repeats: int
    qa: list[QA]
    steps: tuple[int, ...]  # 0-based steps whose batches carry this group's documents

    @property
    def name(self) -> str:
        return f"x{self.repeats}"

    @property
    def docs(self) -> list[str]:
        return [qa_document(q) for q in self.qa]


@dataclass(frozen=True)
class ProbePlan:
    groups: list[ProbeGroup]
    control: list[QA]  # never inserted

    @property
    def control_docs(self) -> list[str]:
        return [qa_document(q) for q in self.control]

    def docs_at(self, step: int) -> list[str]:
        return [d for g in self.groups if step in g.steps for d in g.docs]

    @property
    def first_step(self) -> int:
        return min(s for g in self.groups for s in g.steps)

    @property
    def last_step(self) -> int:
        return max(s for g in self.groups for s in g.steps)

    def summary(self) -> dict[str, Any]:
        return {"groups": {g.name: {"probes": len(g.qa), "steps": list(g.steps)} for g in self.groups},
                "control": len(self.control), "example": self.groups[0].docs[0]}


def insertion_steps(insert_at: int, repeats: int, spacing: int) -> tuple[int, ...]:
    return tuple(insert_at + i * spacing for i in range(repeats))


def plan_probes(candidates: Sequence[QA], per_group: int, repeats: Sequence[int], insert_at: int, spacing: int,
                seed: int, avoid: Collection[str] = ()) -> ProbePlan:
    """One fact per person (a seeded choice each), `per_group` people per group and in the control group.

    A fact whose answer is in `avoid` (answers the model learns elsewhere: a hobby or a city can recur) or is
    another probe's is chosen only when the person has no other: recalling it would not prove the probe."""
    by_person: dict[str, list[QA]] = {}
    for q in candidates:
        by_person.setdefault(q.person_id, []).append(q)
    needed = per_group * (len(repeats) + 1)
    if len(by_person) < needed:
        raise ValueError(f"{needed} probe people needed ({per_group} per group, {len(repeats)} groups and a control "
                         f"group), got {len(by_person)}")
    facts, used = [], set(avoid)
    for pid, qs in list(by_person.items())[:needed]:
        fresh = [q for q in qs if q.answer not in used] or list(qs)
        facts.append(rng_for(seed, "continual", "probe", pid).choice(fresh))
        used.add(facts[-1].answer)
    # Dealt out in turn, not in blocks: later people had fewer fresh answers to choose from, and a block of
    # them would make the control group a different kind of fact than the probes (a drift in the AUC).
    sets = len(repeats) + 1
    groups = [ProbeGroup(r, facts[i::sets], insertion_steps(insert_at, r, spacing)) for i, r in enumerate(repeats)]
    return ProbePlan(groups=groups, control=facts[len(repeats)::sets])


def pack_once(docs: list[list[int]], seq_len: int) -> list[list[int]]:
    """Token documents packed into as few rows as the trainer's packing makes, each document exactly once."""
    total, rows = sum(len(d) for d in docs), []
    stream = packed_rows(docs, seq_len, seed=0)  # its first epoch holds every document once
    while sum(len(r) for r in rows) < total:
        rows.append(next(stream))
    return rows


def retention_summary(steps: Sequence[int], recognition: Sequence[float], recall: Sequence[float],
                      first_insertion: int, last_insertion: int) -> dict[str, Optional[float]]:
    """Before / peak / final of both curves and the fraction of the rise still there at the end.

    A measurement at step s is taken after s optimizer steps, so the one at `first_insertion` is the last
    before the probes were seen, and the first one past `last_insertion` the peak (right after the last)."""
    before = max(i for i, s in enumerate(steps) if s <= first_insertion)
    peak = min(i for i, s in enumerate(steps) if s > last_insertion)

    def retained(curve: Sequence[float], base: float, rise: float) -> Optional[float]:
        gained = curve[peak] - base
        return (curve[-1] - base) / gained if gained >= rise else None

    return {"recognition_before": recognition[before], "recognition_peak": recognition[peak],
            "recognition_final": recognition[-1], "recall_before": recall[before], "recall_peak": recall[peak],
            "recall_final": recall[-1],
            "recognition_retained": retained(recognition, 0.5, RECOGNITION_RISE),
            "recall_retained": retained(recall, recall[before], RECALL_RISE)}


RETENTION_FIGURES = ("recognition_before", "recognition_peak", "recognition_final", "recall_before", "recall_peak",
                     "recall_final", "recognition_retained", "recall_retained")
