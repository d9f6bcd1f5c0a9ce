"""Rephrasing attack: KnowMem asked in question wordings, and VerbMem on fact paraphrases, that neither
training nor unlearning ever saw (memorylab/unlearn/attacks/rephrasings.py builds them). A method that only
suppressed the surface forms it unlearned on gives the facts back when asked otherwise. The ceiling is the
target asked the same way (a reworded question is harder for any model)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from memorylab.data.templates import MAX_PARAPHRASES
from memorylab.unlearn.attacks.attack import AttackBench, AttackOutcome, AttackSettings, AttackSubject


class Rephrase(AttackSettings):
    attack: Literal["rephrase"] = "rephrase"
    changes = "prompts"

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        if scenario.data.source == "world" and scenario.world.paraphrases >= MAX_PARAPHRASES:
            return (f"the rephrase attack needs fact wordings the models never saw: world.paraphrases must be below "
                    f"{MAX_PARAPHRASES}, got {scenario.world.paraphrases}")
        return None

    def run(self, subject: AttackSubject, bench: AttackBench) -> dict[str, AttackOutcome]:
        return {self.attack: AttackOutcome(after=bench.measure(subject.lm(), asked=bench.data.rephrased_eval_data))}
