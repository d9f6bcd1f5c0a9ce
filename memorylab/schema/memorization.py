"""`kind: memorization` — the quickstart: train a target and a retrain reference, measure both."""

from __future__ import annotations

from typing import ClassVar, Literal

from memorylab.schema.common import Resources, ScenarioBase


class MemorizationScenario(ScenarioBase):
    """Build the world, train a target (forget + retain) and a retrain (retain only), measure both."""

    kind: Literal["memorization"]
    trains_drafter: ClassVar[bool] = True  # eval.speculative.drafter 'train': trained beside target and retrain
    resources: Resources = Resources()
