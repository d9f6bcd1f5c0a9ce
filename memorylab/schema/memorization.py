"""`kind: memorization` — the quickstart: train a target and a retrain reference, measure both."""

from __future__ import annotations

from typing import Literal

from memorylab.schema.common import (EvalConfig, ModelSpec, RayConfig, Resources, RunName, Strict,
                                     TrainConfig, WorldConfig)


class MemorizationScenario(Strict):
    """Build the world, train a target (forget + retain) and a retrain (retain only), measure both."""

    name: RunName
    kind: Literal["memorization"]
    description: str = ""
    seed: int = 0
    world: WorldConfig = WorldConfig()
    model: ModelSpec = ModelSpec()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: Resources = Resources()
    ray: RayConfig = RayConfig()
