"""Relearning attacks: a few fine-tuning steps on a handful of documents, then the forget figures of the forget
people the attacker did *not* train on.

`relearn` trains on `examples` documents about the first `units` forget people (or TOFU authors), the facts an
attacker already holds (Deeb & Roger: 88% of the pre-unlearning accuracy comes back); `relearn_benign` on as
many retain-side documents, text about other people with the same attributes (Łucki et al.: unrelated examples
suffice). Either way the knowledge measured afterwards was never in the attacker's data: what returns was
still in the weights. ULD: the target is fine-tuned, its assistant kept. Both measure the model before and
after on the same people, the rest of the forget set.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from memorylab.data.seeding import rng_for
from memorylab.unlearn.attacks.attack import AttackBench, AttackOutcome, AttackSettings, AttackSubject


class Relearn(AttackSettings):
    attack: Literal["relearn"] = "relearn"
    changes = "weights"
    benign: ClassVar[bool] = False  # the attacker's documents: False = forget-side, True = retain-side

    examples: int = Field(10, ge=1, description="documents the attacker fine-tunes on")
    units: int = Field(1, ge=1, description="forget people (TOFU authors) those documents are about; the other "
                       "forget people are the ones measured")
    steps: int = Field(10, ge=1)
    lr: float = Field(1.0e-3, gt=0)
    batch_size: int = Field(4, ge=1, description="packed rows per step")
    seq_len: int = Field(128, ge=8)

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        forget = scenario.world.forget if scenario.data.source == "world" else None
        if forget is not None and forget <= self.units:
            return (f"{self.attack}.units is {self.units} but the world has {forget} forget people: at least one "
                    "must be left to measure on")
        return None

    def documents(self, bench: AttackBench) -> list[Any]:
        """The attacker's documents: a seeded draw of distinct ones (a canary's repeats count once)."""
        data = bench.data
        pool = data.retain_docs if self.benign else data.forget_docs(data.units[: self.units])
        distinct = list({repr(doc): doc for doc in pool}.values())
        return rng_for(bench.seed, self.attack).sample(distinct, min(self.examples, len(distinct)))

    def run(self, subject: AttackSubject, bench: AttackBench) -> dict[str, AttackOutcome]:
        from memorylab.unlearn.attacks.fine_tune import FineTune
        from memorylab.unlearn.loop import unlearn

        measured = bench.data.units[self.units:]
        before = bench.measure(subject.lm(), measured)
        tuning = FineTune(steps=self.steps, lr=self.lr, batch_size=self.batch_size, seq_len=self.seq_len)
        unlearn(subject.model, subject.tokenizer, self.documents(bench), [], tuning, seed=bench.seed,
                show_progress=False)
        return {self.attack: AttackOutcome(after=bench.measure(subject.lm(), measured), unattacked=before)}


class RelearnBenign(Relearn):
    attack: Literal["relearn_benign"] = "relearn_benign"  # type: ignore[assignment]
    benign = True
