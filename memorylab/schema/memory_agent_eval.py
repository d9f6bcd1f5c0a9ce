"""`kind: memory_agent_eval` — evaluate a memory agent: sessions fed over HTTP, then probes; and/or a
side-by-side comparison of retrievers and rerankers on the same data, in-process.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, model_validator

from memorylab.scenario_problems import CheckContext
from memorylab.schema.common import RunName, Seed, Strict
from memorylab.schema.memory_agent import RerankerName


class DatasetConfig(Strict):
    source: Literal["synthetic", "locomo"] = "synthetic"
    path: Optional[str] = Field(None, description="a LoCoMo JSON (source: locomo), relative to the scenario file; "
                                                  "default: ../shared/data/locomo/locomo5_dev.json beside the repository")
    conversations: Optional[int] = Field(None, ge=1, description="use only the first N conversations")
    questions: Optional[int] = Field(None, ge=1, description="use only the first N questions of each")


class SyntheticSessions(Strict):
    """Sessions on the agent's world: new (never trained) people are introduced, some facts change later."""

    new_people: int = Field(4, ge=1, description="holdout people the sessions introduce (the model never saw them)")
    known_people: int = Field(4, ge=0, description="trained people asked about (the model knows them)")
    facts_per_person: int = Field(4, ge=1)
    conflicts: int = Field(3, ge=0, description="facts changed in a later session")
    filler_turns: int = Field(2, ge=0, description="small-talk turns per session (nothing to store)")
    updates_known: int = Field(4, ge=0, description="changed facts told about trained people (other than the "
                                                    "known_people asked from the weights): the told value must win")
    never_told: int = Field(6, ge=0, description="questions about people nobody mentioned: the agent should abstain")


class JudgeConfig(Strict):
    """An LLM judge over an OpenAI-compatible API: every answer scored with a lenient prompt (as mem0's
    evaluation) and a strict one (the exact fact required), side by side (memorylab/metrics/judge.py, prompts in memorylab/metrics/judge_prompts/)."""

    base_url: str = Field(..., pattern=r"^https?://", description="the judge server's /v1 URL")
    model: str = Field(..., min_length=1)
    api_key_env: Optional[str] = Field("OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                       description="the environment variable holding the key (None: no key)")
    api: Literal["chat", "completions"] = "chat"
    timeout_s: float = Field(60.0, gt=0, le=600)
    max_retries: int = Field(2, ge=0, le=10)


class CompareConfig(Strict):
    """In-process comparison on the dataset's turns: recall@k per retriever, then hybrid + each reranker."""

    retrievers: list[Literal["dense", "bm25", "hybrid"]] = Field(default_factory=lambda: ["dense", "bm25", "hybrid"])
    rerankers: list[RerankerName] = Field(default_factory=list, description="each is run on the hybrid top list")
    candidates: int = Field(30, ge=1, le=1000)
    cross_encoder_path: Optional[str] = None


class MemoryAgentEvalScenario(Strict):
    name: RunName
    kind: Literal["memory_agent_eval"]
    description: str = ""
    seed: Seed = 0
    agent: Union[str, dict[str, Any]] = Field(
        ..., description="the memory_agent scenario: a path (relative to this file) or the scenario inline")
    url: Optional[str] = Field(None, description="evaluate a running server instead of starting one")
    tenant: str = Field("eval", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    dataset: DatasetConfig = DatasetConfig()
    synthetic: SyntheticSessions = SyntheticSessions()
    serve_eval: bool = Field(True, description="feed the sessions over HTTP and ask the probes")
    compare: Optional[CompareConfig] = None
    top_k: int = Field(10, ge=1, le=100)
    answer: bool = Field(True, description="ask the agent's /chat for answers (exact match / F1, LoCoMo's scoring)")
    judge: Optional[JudgeConfig] = Field(None, description="also score every answer with an LLM judge (needs answer)")

    @model_validator(mode="after")
    def _something_to_do(self) -> "MemoryAgentEvalScenario":
        if not self.serve_eval and self.compare is None:
            raise ValueError("nothing to evaluate: set serve_eval: true or a `compare` block")
        if self.judge is not None and not (self.answer and self.serve_eval):
            raise ValueError("judge scores the agent's answers: it needs answer: true and serve_eval: true")
        # The agent (named or inline) is checked by check_agent when the file loads, at the agent's lines.
        return self


def check_agent(scenario: MemoryAgentEvalScenario, context: CheckContext) -> None:
    """An evaluation against its agent, when the file loads: the agent loads and is a memory_agent, and the
    synthetic sessions fit its world (checked here, not when the sessions are built after Ray has started)."""
    loaded = context.nested(scenario.agent, "agent", "the agent scenario")
    if loaded is None:
        return
    agent = loaded[0]
    if agent.kind != "memory_agent":
        return context.add(("agent",), f"a '{agent.kind}' scenario; an evaluation needs a memory_agent scenario")
    if scenario.dataset.source != "synthetic":
        return None
    if scenario.compare is not None:
        context.add(("compare",), "needs dataset.source locomo (the synthetic sessions are evaluated by serve_eval)")
    world, wanted = agent.world, scenario.synthetic
    retain = world.num_people - world.forget - world.holdout
    if wanted.new_people > world.holdout:
        context.add(("synthetic", "new_people"), f"{wanted.new_people} is more than the agent world's "
                    f"{world.holdout} holdout people (the never-trained people the sessions introduce)")
    if wanted.known_people > retain:
        context.add(("synthetic", "known_people"), f"{wanted.known_people} is more than the agent world's "
                    f"{retain} retain people (the trained people the sessions ask about)")
    elif wanted.known_people + wanted.updates_known > retain:
        context.add(("synthetic", "updates_known"), f"known_people + updates_known ({wanted.known_people} + "
                    f"{wanted.updates_known}) is more than the agent world's {retain} retain people")
    return None
