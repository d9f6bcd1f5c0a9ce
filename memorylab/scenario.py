"""The scenario schema: one pydantic model per scenario kind, gathered here.

The blocks every kind shares live in memorylab/schema/common.py, each kind in its own module under
memorylab/schema/; `kind` picks the model (KINDS). Everything is re-exported here, so
`from memorylab.scenario import WorldConfig` keeps working wherever a block moves.
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import BaseModel, Field

from memorylab.schema.common import (  # noqa: F401  (re-exported)
    ActorResources,
    EvalConfig,
    ModelSpec,
    RayConfig,
    Resources,
    Strict,
    TinyModelConfig,
    TrainConfig,
    WorldConfig,
)
from memorylab.schema.continual import ContinualScenario
from memorylab.schema.memorization import MemorizationScenario
from memorylab.schema.memory_agent import MemoryAgentScenario
from memorylab.schema.memory_agent_eval import MemoryAgentEvalScenario
from memorylab.schema.sweep import SweepScenario
from memorylab.schema.unlearning import (  # noqa: F401  (re-exported)
    DataConfig,
    MethodConfig,
    UnlearningScenario,
)

# kind -> model. Each model also pins its own `kind` as a Literal, so a dumped scenario reloads as itself.
KINDS: dict[str, type[BaseModel]] = {
    "memorization": MemorizationScenario,
    "unlearning": UnlearningScenario,
    "memory_agent": MemoryAgentScenario,
    "memory_agent_eval": MemoryAgentEvalScenario,
    "sweep": SweepScenario,
    "continual": ContinualScenario,
}

# For type hints (and pydantic fields that hold any scenario); grows with KINDS.
Scenario = Annotated[Union[MemorizationScenario, UnlearningScenario, MemoryAgentScenario, MemoryAgentEvalScenario,
                           ContinualScenario],
                     Field(discriminator="kind")]
