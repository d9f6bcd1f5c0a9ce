"""`kind: unlearning` — make a trained target forget, with several methods side by side, MUSE/TOFU style.

Every setting that could stop a run is checked here, before any training starts: method names and their
hyperparameter ranges, unique labels, forget-set sizes that the data can supply, and TOFU splits that do not
overlap.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional, Union

from pydantic import Field, model_validator

from memorylab.schema.common import PlacementStrategy, Resources, ScenarioBase, Strict

TOFU_FORGET_AUTHORS = 20  # forget10: 400 QA pairs, 20 per author


class MethodBase(Strict):
    label: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="the method's name in reports (default: the method); unique")
    steps: int = Field(40, ge=1)
    lr: float = Field(5e-4, gt=0)
    batch_size: int = Field(8, ge=1)
    seq_len: int = Field(128, ge=8)
    warmup_steps: int = Field(0, ge=0)
    grad_clip: float = Field(1.0, gt=0)

    @property
    def name(self) -> str:
        return self.label or self.method  # type: ignore[attr-defined]


class GradAscentConfig(MethodBase):
    method: Literal["grad_ascent"]


class GradDiffConfig(MethodBase):
    method: Literal["grad_diff"]
    retain_weight: float = Field(1.0, ge=0)


class NPOConfig(MethodBase):
    method: Literal["npo"]
    beta: float = Field(0.1, gt=0, description="NPO's inverse temperature (the paper's default)")
    retain_weight: float = Field(1.0, ge=0, description="weight of the retain NLL (NPO+RT); 0 is plain NPO")


class SimNPOConfig(MethodBase):
    method: Literal["simnpo"]
    beta: float = Field(4.5, gt=0)
    gamma: float = Field(0.125, ge=0, le=10)
    retain_weight: float = Field(1.0, ge=0)


class ULDConfig(MethodBase):
    method: Literal["uld"]
    lr: float = Field(1e-3, gt=0)
    steps: int = Field(80, ge=1)
    grad_clip: Optional[float] = Field(None, gt=0, description="max gradient norm of the assistant's LoRA "
                                                                 "weights; None (default): no clipping")
    alpha: float = Field(1.0, gt=0, le=10, description="weight of the assistant's logits (0 < alpha <= 10)")
    r: float = Field(0.1, gt=0, le=1, description="relative-top filter")
    layers: int = Field(1, ge=1, description="K: the target's first K layers form the assistant")
    lora_rank: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    retain_weight: float = Field(1.0, ge=0, description="weight of KL(uniform || p) on the retain set")
    placement: Literal["one_actor", "two_actors"] = Field(
        "one_actor", description="one actor hosting target and assistant (one core or device), or two actors in "
                                 "one placement group (resources.uld_pair_strategy) stepping in lockstep, their "
                                 "forwards side by side: faster when each gets its own core or device, and for "
                                 "pairs too big for one device")


MethodConfig = Annotated[Union[GradAscentConfig, GradDiffConfig, NPOConfig, SimNPOConfig, ULDConfig],
                         Field(discriminator="method")]


class DataConfig(Strict):
    """Where the forget/retain/holdout texts come from: the synthetic world, or TOFU's JSON Lines."""

    source: Literal["world", "tofu"] = "world"
    tofu_dir: Optional[str] = Field(None, description="default: $MEMORYLAB_SHARED_DATA/tofu or ../shared/data/tofu")
    forget: Literal["forget10"] = "forget10"
    retain: Literal["retain90", "full"] = "retain90"
    holdout: Literal["holdout10", "forget10"] = "holdout10"
    retain_eval_items: int = Field(400, ge=1, description="TOFU retain questions evaluated (a strided subset)")
    retain_authors: Optional[int] = Field(None, ge=1, le=180, description="train on only the first N retain "
                                          "authors (20 QA each); None = all 180. Tiny CPU runs use fewer.")

    @model_validator(mode="after")
    def _disjoint(self) -> "DataConfig":
        if self.holdout == self.forget:
            raise ValueError(f"the forget set ({self.forget}) overlaps the holdout set ({self.holdout}): "
                             "non-members must never have been trained on")
        if self.retain == "full":
            raise ValueError("retain 'full' contains the forget set; use retain90")
        return self


class ReferenceModels(Strict):
    """Already-trained models (folders written by save_pretrained, or hub ids); None trains them here."""

    target: Optional[str] = None
    retrain: Optional[str] = None
    evaluations: Optional[str] = Field(None, description="a folder caching the evaluations of target and "
                                       "retrain, for runs that measure them alike (a sweep's trials set it)")


class ScalabilityConfig(Strict):
    sizes: list[Annotated[int, Field(ge=1)]] = Field(..., min_length=1,
                                                     description="nested forget-set sizes (people or TOFU authors)")
    methods: Optional[list[str]] = Field(None, min_length=1,
                                         description="labels of the methods to scale (default: all)")

    @model_validator(mode="after")
    def _increasing(self) -> "ScalabilityConfig":
        if any(b <= a for a, b in zip(self.sizes, self.sizes[1:])):
            raise ValueError(f"sizes must increase strictly, got {self.sizes}")
        return self


class SustainabilityConfig(Strict):
    requests: int = Field(..., ge=2, description="sequential disjoint forget requests")
    methods: Optional[list[str]] = Field(None, min_length=1,
                                         description="labels of the methods to run in sequence (default: all)")


class UnlearningResources(Resources):
    """Resources, plus how the one group of actors this kind places together is spread over the cluster."""

    uld_pair_strategy: PlacementStrategy = Field(
        "STRICT_PACK", description="Ray placement strategy of the group holding a ULD model's target and assistant "
        "actors (a uld method's placement: two_actors; each actor gets a bundle of resources.model). STRICT_PACK: "
        "one node, as their per-token logits exchange wants; PACK: one node if possible, else several (e.g. two "
        "whole-GPU actors on nodes with one GPU each); SPREAD / STRICT_SPREAD: different nodes preferred / required")


class UnlearningScenario(ScenarioBase):
    """Train (or load) a target and a retrain reference, unlearn with every method, measure every model."""

    kind: Literal["unlearning"]
    trains_drafter: ClassVar[bool] = True  # eval.speculative.drafter 'train': trained beside target and retrain
    data: DataConfig = DataConfig()
    reference: ReferenceModels = ReferenceModels()
    methods: list[MethodConfig] = Field(..., min_length=1)
    scalability: Optional[ScalabilityConfig] = None
    sustainability: Optional[SustainabilityConfig] = None
    resources: UnlearningResources = UnlearningResources()
    progress_points: int = Field(
        3, ge=1, le=50, description="in a sweep whose scheduler reads intermediate results (asha): how many times "
        "each method's model is measured while it unlearns, at evenly spaced steps, before its final measurement "
        "(an ordinary run measures only the final models)")

    @model_validator(mode="after")
    def _consistent(self) -> "UnlearningScenario":
        labels = [m.name for m in self.methods]
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        if dupes:
            raise ValueError(f"method labels must be unique; repeated: {', '.join(dupes)} (give each a `label`)")
        if {"target", "retrain"} & set(labels):
            raise ValueError("'target' and 'retrain' name the reference models; choose other labels")
        # Forget sets are counted in people (world) or TOFU authors (forget10: 20 authors x 20 QA).
        available = self.world.forget if self.data.source == "world" else TOFU_FORGET_AUTHORS
        for block, field in ((self.scalability, "scalability"), (self.sustainability, "sustainability")):
            if block is None:
                continue
            unknown = sorted(set(block.methods or []) - set(labels))
            if unknown:
                raise ValueError(f"{field}.methods names unknown labels: {', '.join(unknown)}; "
                                 f"expected some of: {', '.join(labels)}")
        if self.scalability and self.scalability.sizes[-1] > available:
            raise ValueError(f"scalability sizes go up to {self.scalability.sizes[-1]} but the forget set has "
                             f"{available}; a forget set cannot be larger than the data")
        if self.sustainability and self.sustainability.requests > available:
            raise ValueError(f"{self.sustainability.requests} sustainability requests need at least that many "
                             f"forget people/authors; the forget set has {available}")
        layers = self.model.tiny.num_layers if self.model.is_tiny else None
        for m in self.methods:
            if isinstance(m, ULDConfig) and layers is not None and m.layers >= layers:
                raise ValueError(f"uld layers ({m.layers}) must be fewer than the target's {layers} layers: "
                                 "the assistant is the target's first K layers")
            # LockstepULD combines two actors' logits one token at a time: it has no verification over drafts.
            if isinstance(m, ULDConfig) and m.placement == "two_actors" and self.eval.speculative is not None:
                raise ValueError(f"method {m.name}: uld placement two_actors cannot decode speculatively; use "
                                 "placement one_actor or drop eval.speculative")
            if isinstance(m, ULDConfig) and m.placement == "two_actors" and self.resources.model.is_empty:
                raise ValueError(f"method {m.name}: uld placement two_actors gives each actor a placement-group "
                                 "bundle of resources.model, which asks for nothing (num_cpus 0, no GPU, no custom "
                                 "resources); give it num_cpus or num_gpus, or use placement one_actor")
        return self
