"""`kind: memory_agent` — a served memory agent: store, policy, retrieval, reranking, adaptive retrieval.

`memorylab serve FILE` (or `serve deploy` / a RayService with `memorylab.serve:build_app`) builds the app
from this model. The generator is the tiny target trained on the world (the people it "knows"), or a
checkpoint / HF id on a cluster.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, SerializationInfo, field_serializer, field_validator, model_validator

from memorylab.hidden_keys import HIDDEN_KEY
from memorylab.schema.common import ActorResources, ScenarioBase, SpeculativeConfig, Strict

RerankerName = Literal["none", "cross_encoder", "listwise_first"]
RetrievalMode = Literal["dense", "bm25", "hybrid"]


class ReaderConfig(Strict):
    """How a trained generator learns to answer from the memories /chat shows it: a reader head
    (models/reader_head.py) trained on its frozen states, on examples about people outside the world
    (data/reader.py), in exactly /chat's prompt. With agent.yaml's 2 CPUs it costs less than the world's
    training on one (README: the figures)."""

    steps: int = Field(1500, ge=0, description="reader head training steps (0: no reader; the generator answers "
                                               "from its weights whatever the memories say)")
    batch_size: int = Field(32, ge=1, le=1024, description="examples per reader training step")
    lr: float = Field(3e-3, gt=0, description="peak learning rate of the reader head")
    layers: int = Field(1, ge=1, le=8, description="the head's global encoder layers (after one local layer)")
    width: int = Field(64, ge=8, le=1024, description="the head's width (a multiple of its 4 attention heads)")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout in the head while it trains")
    examples: int = Field(8000, ge=10, description="reader examples drawn (about people outside the world)")
    people: int = Field(3000, ge=10, description="people outside the world the examples are about: many, so the "
                                                 "head learns to read, not to remember them")
    distractors: int = Field(4, ge=0, le=16, description="most memories beside the one that answers (/chat shows "
                                                         "top_k: agent.yaml's 5 is 4 distractors)")
    abstain: str = Field("unknown", min_length=1, max_length=64,
                         description="the answer when no memory answers the question")
    num_cpus: Optional[float] = Field(
        None, gt=0, le=1024, description="CPUs (and torch threads) of the head's training task; None: the "
                                         "trainer's. It trains after the world's model, alone: agent.yaml gives it "
                                         "both cores of a laptop")

    @field_validator("width")
    @classmethod
    def _width_splits_into_heads(cls, width: int) -> int:
        if width % 4:
            raise ValueError(f"must be a multiple of 4 (the head's attention heads), got {width}")
        return width


class GeneratorConfig(Strict):
    """Which model answers, reranks (listwise) and decides ops with `infer: true`."""

    source: Literal["train", "path", "openai"] = Field(
        "train", description="train: the tiny target trained on the world, then as a reader (kept in the serve "
                             "folder); path: `path` names a checkpoint folder or an HF id; openai: any "
                             "OpenAI-compatible server at `base_url`")
    path: Optional[str] = None
    reader: ReaderConfig = ReaderConfig()
    base_url: Optional[str] = Field(None, pattern=r"^https?://", description="source openai: the server's /v1 URL")
    model: Optional[str] = Field(None, min_length=1, description="source openai: the model name the server serves")
    api_key_env: Optional[str] = Field(
        "OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="source openai: the environment variable holding the key (unset or None: no key)")
    api: Literal["chat", "completions"] = Field(
        "chat", description="source openai: ask /chat/completions (one user message) or /completions")
    timeout_s: float = Field(30.0, gt=0, le=600, description="source openai: seconds a call may take")
    max_retries: int = Field(2, ge=0, le=10, description="source openai: retries of a failed call")
    max_new_tokens: int = Field(24, ge=1, le=1024)
    max_context_tokens: int = Field(224, ge=16, description="prompt budget: memories are cut to fit it")
    speculative: Optional[SpeculativeConfig] = Field(
        None, description="every generation drafted by a small drafter and verified (same greedy answers, faster)")

    @model_validator(mode="after")
    def _settings_of_the_source(self) -> "GeneratorConfig":
        if self.source == "path" and not self.path:
            raise ValueError("source 'path' needs `path` (a checkpoint folder or an HF id)")
        if self.source == "openai" and not (self.base_url and self.model):
            raise ValueError("source 'openai' needs `base_url` (the server's /v1 URL) and `model`")
        if self.source != "openai" and (self.base_url or self.model):
            raise ValueError(f"base_url and model name an OpenAI-compatible server: they need source 'openai', "
                             f"not {self.source!r}")
        trained_only = set(self.reader.model_fields_set) - {"abstain"}
        if self.source != "train" and "reader" in self.model_fields_set and trained_only:
            raise ValueError(f"reader.{sorted(trained_only)[0]} trains the generator trained here (source 'train'), "
                             f"not a {self.source!r} one (only reader.abstain applies to every source)")
        if self.speculative is not None and self.speculative.drafter == "train" and self.source != "train":
            raise ValueError("speculative.drafter 'train' trains a drafter beside a generator trained on the world "
                             "(source: train); with source 'path' name a drafter folder or HF id")
        if self.speculative is not None and self.source == "openai":
            raise ValueError("speculative decoding runs in memorylab's own generator; an OpenAI-compatible server "
                             "drafts (or not) by its own settings")
        return self


class PolicySettings(Strict):
    """The deterministic ADD/UPDATE/DELETE/NOOP policy (and the candidates an LLM sees with infer: true)."""

    duplicate_threshold: float = Field(0.92, gt=0, le=1, description="cosine at or above which a fact is a NOOP")
    retraction_threshold: float = Field(0.5, gt=0, le=1, description="cosine a retraction needs to delete")
    candidates: int = Field(5, ge=1, le=50, description="similar memories shown to the LLM per new fact")
    max_facts_per_add: int = Field(64, ge=1, le=10_000, description="facts one add request may carry (each "
                                   "sentence of a fact-bearing message is one); more is a 422")
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
    resolve_aliases: bool = Field(
        True, description="/chat: a question using a nickname the memories define is also searched with the "
                          "person's name (memorylab/memory/mentions.py)")
    quantize_embedder: bool = Field(
        True, description="int8 MiniLM on CPU (per-channel scales): about 1.7x faster query embedding, the same "
                          "LoCoMo hybrid recall@10 as float32 (0.617 vs 0.618; dense alone 0.456 vs 0.470); "
                          "false for float32 (on GPU too). A store keeps the setting it was written with")


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
    memory_aware: bool = Field(
        True, description="confidence and entropy: retrieve anyway when the memories hold facts about someone the "
                          "question names (told facts are newer than the generator's weights)")


class TenantKeys(Strict):
    tenant: str = Field(..., pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    key: str = Field(..., min_length=8, description="a bearer token; prefer MEMORYLAB_API_KEYS over the file")

    @field_serializer("key")
    def _hidden(self, key: str, info: SerializationInfo) -> str:
        return key if (info.context or {}).get("reveal_keys") else HIDDEN_KEY  # REVEAL_KEYS


class ServeSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    max_body_bytes: int = Field(1_000_000, ge=1024, description="larger request bodies get 413")
    max_queued_adds: int = Field(1000, ge=1, description="async adds one tenant may have waiting; more get 429")
    event_retention_s: float = Field(86_400.0, gt=0, description="how long an applied or failed async add's "
                                     "event stays readable (GET .../events/{event_id})")
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
    resident_mb: int = Field(1024, ge=1, description="memory for agents' memories held in RAM (estimated); the "
                             "least recently used agents beyond it are dropped and read back from disk on use")


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
    def _trained_drafter_is_tiny(self) -> "MemoryAgentScenario":
        spec = self.generator.speculative
        if spec is not None and spec.drafter == "train" and not self.model.is_tiny:
            raise ValueError("generator.speculative.drafter 'train' builds a tiny drafter for a tiny generator "
                             f"(model.name: tiny), not for {self.model.name!r}: name a drafter folder or HF id")
        return self
