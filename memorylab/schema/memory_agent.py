"""`kind: memory_agent` — a served memory agent: store, policy, retrieval, reranking, adaptive retrieval.

`memorylab serve FILE` (or `serve deploy` / a RayService with `memorylab.serve:build_app`) builds the app
from this model. The generator is the tiny target trained on the world (the people it "knows"), or a
checkpoint / HF id on a cluster.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from memorylab.schema.common import ActorResources, ScenarioBase, SpeculativeConfig, Strict

RerankerName = Literal["none", "cross_encoder", "listwise_first"]
RetrievalMode = Literal["dense", "bm25", "hybrid"]


class GeneratorConfig(Strict):
    """Which model answers, reranks (listwise) and decides ops with `infer: true`."""

    source: Literal["train", "path"] = Field(
        "train", description="train: the tiny target trained on the world (kept in the serve folder); "
                             "path: `path` names a checkpoint folder or an HF id")
    path: Optional[str] = None
    max_new_tokens: int = Field(24, ge=1, le=1024)
    max_context_tokens: int = Field(224, ge=16, description="prompt budget: memories are cut to fit it")
    speculative: Optional[SpeculativeConfig] = Field(
        None, description="every generation drafted by a small drafter and verified (same greedy answers, faster)")

    @model_validator(mode="after")
    def _path_when_named(self) -> "GeneratorConfig":
        if self.source == "path" and not self.path:
            raise ValueError("source 'path' needs `path` (a checkpoint folder or an HF id)")
        if self.speculative is not None and self.speculative.drafter == "train" and self.source != "train":
            raise ValueError("speculative.drafter 'train' trains a drafter beside a generator trained on the world "
                             "(source: train); with source 'path' name a drafter folder or HF id")
        return self


class PolicySettings(Strict):
    """The deterministic ADD/UPDATE/DELETE/NOOP policy (and the candidates an LLM sees with infer: true)."""

    duplicate_threshold: float = Field(0.92, gt=0, le=1, description="cosine at or above which a fact is a NOOP")
    retraction_threshold: float = Field(0.5, gt=0, le=1, description="cosine a retraction needs to delete")
    candidates: int = Field(5, ge=1, le=50, description="similar memories shown to the LLM per new fact")
    fact_roles: tuple[Literal["user", "assistant", "system", "tool"], ...] = Field(
        ("user",), min_length=1, description="whose messages carry facts (an assistant that echoes a fact back "
                                             "would store it twice)")


class RetrievalSettings(Strict):
    mode: RetrievalMode = "hybrid"
    top_k: int = Field(5, ge=1, le=100)
    candidates: Optional[int] = Field(
        None, ge=1, le=1000, description="depth of each arm before fusion (default: as deep as top_k, as "
        "Elasticsearch's rank_window_size; deeper arms let memories found by both arms crowd out each arm's best)")
    rerank_depth: int = Field(30, ge=1, le=1000, description="hybrid results a reranker reorders")
    rrf_k: int = Field(60, ge=1)
    reorder: bool = Field(True, description="put the best memories at both ends of the context")
    quantize_embedder: bool = Field(
        False, description="int8 MiniLM on CPU: about 2.8x faster query embedding, slightly lower recall "
                           "(LoCoMo hybrid recall@10 0.601 vs 0.618); a store must keep one setting")


class RerankerSettings(Strict):
    name: RerankerName = "none"
    model_path: Optional[str] = Field(None, description="a sentence-transformers CrossEncoder folder")
    window: int = Field(8, ge=2, le=26)
    stride: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> "RerankerSettings":
        if self.name == "cross_encoder" and not self.model_path:
            raise ValueError("reranker 'cross_encoder' needs `model_path` (a CrossEncoder folder)")
        if self.stride >= self.window:
            raise ValueError(f"stride ({self.stride}) must be smaller than window ({self.window})")
        return self


class AdaptiveSettings(Strict):
    policy: Literal["always", "never", "confidence", "entropy"] = "always"
    threshold: Optional[float] = Field(None, ge=0, le=1, description="default: the policy's own")
    temperature: float = Field(0.1, gt=0, description="softmax temperature of the entropy router")


class TenantKeys(Strict):
    tenant: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: str = Field(..., min_length=8, description="a bearer token; prefer MEMORYLAB_API_KEYS over the file")


class ServeSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies get 413")
    retriever_batch_size: int = Field(16, ge=1, le=256, description="searches whose queries are embedded and "
                                      "scored together (@serve.batch)")
    batch_wait_ms: float = Field(
        6.0, ge=0, le=1000, description="how long a search waits for others to join its batch: a longer wait "
        "makes larger batches, which serve many concurrent clients faster, and adds up to that wait to a lone "
        "client's search; past a few ms the wait costs more than the batching gains (bench/serve_load.py)")
    generator_replicas: int = Field(1, ge=1)
    api_keys: list[TenantKeys] = Field(default_factory=list,
                                       description="overridden by MEMORYLAB_API_KEYS=tenant:key,tenant:key")
    folder: Optional[str] = Field(None, description="where the store and the generator live (default runs/<name>)")

    @field_validator("api_keys")
    @classmethod
    def _keys_unique(cls, keys: list[TenantKeys]) -> list[TenantKeys]:
        seen: set[str] = set()
        for k in keys:
            if k.key in seen:
                raise ValueError(f"key of tenant '{k.tenant}' is given twice; a key names one tenant")
            seen.add(k.key)
        return keys


class MemorySettings(Strict):
    policy: PolicySettings = PolicySettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    reranker: RerankerSettings = RerankerSettings()
    adaptive: AdaptiveSettings = AdaptiveSettings()


class AgentResources(Strict):
    """Ray resources per deployment replica. The defaults add up to 2 CPUs, so the app fits a 2-core laptop.
    The ingress holds the retriever (embedder + store) and gets a whole core: embedding queries is most of a
    search's work."""

    ingress: ActorResources = ActorResources(num_cpus=1)
    agent: ActorResources = ActorResources(num_cpus=0.5)
    generator: ActorResources = ActorResources(num_cpus=0.5)


class MemoryAgentScenario(ScenarioBase):
    """A served agent: its generator (trained on the world unless a path is named) and its memory."""

    kind: Literal["memory_agent"]
    generator: GeneratorConfig = GeneratorConfig()
    memory: MemorySettings = MemorySettings()
    serve: ServeSettings = ServeSettings()
    deployments: AgentResources = AgentResources()

    @model_validator(mode="after")
    def _sessions_stay_on_one_replica(self) -> "MemoryAgentScenario":
        # The listwise reranker steps the generator in a session (a KV cache held by one replica); Serve
        # routes each call on its own, so with several replicas a session's calls could land on different ones.
        if self.memory.reranker.name == "listwise_first" and self.serve.generator_replicas > 1:
            raise ValueError("memory.reranker listwise_first needs serve.generator_replicas: 1 (its calls keep a "
                             "per-replica session)")
        return self

    @model_validator(mode="after")
    def _trained_drafter_is_tiny(self) -> "MemoryAgentScenario":
        spec = self.generator.speculative
        if spec is not None and spec.drafter == "train" and not self.model.is_tiny:
            raise ValueError("generator.speculative.drafter 'train' builds a tiny drafter for a tiny generator "
                             f"(model.name: tiny), not for {self.model.name!r}: name a drafter folder or HF id")
        return self
