"""`kind: unlearning` — make a trained target forget, with several methods side by side, MUSE/TOFU style.

Every setting that could stop a run is checked here, before any training starts: method names and their
hyperparameter ranges, unique labels, forget-set sizes that the data can supply, and TOFU splits that do not
overlap.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal, Optional

from pydantic import Field, model_validator

from memorylab.schema.common import ActorResources, PlacementStrategy, Resources, ScenarioBase, Strict
from memorylab.unlearn.attacks.registry import attack_union
from memorylab.unlearn.registry import method_union

TOFU_FORGET_AUTHORS = 20  # forget10: 400 QA pairs, 20 per author


# One method of `methods:`: the settings class of the method it names (memorylab/unlearn/registry.py), where
# each method's settings and defaults are declared.
MethodConfig = method_union()
# One attack of `attacks:` (memorylab/unlearn/attacks/registry.py), likewise.
AttackConfig = attack_union()


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
    """Resources, plus the unlearning tasks and how the one group of actors this kind places together is spread
    over the cluster."""

    unlearner: ActorResources = ActorResources()

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
    attacks: list[AttackConfig] = Field(default_factory=list, description="attacks on every measured model (the "
                                        "target, the retrain model and each method's), each measured the MUSE way")
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
        keys = [key for attack in self.attacks for key in attack.keys()]
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise ValueError(f"attacks: {', '.join(repeated)} measured twice; list each attack once (quantize "
                             "takes a list of bits)")
        for m in [*self.methods, *self.attacks]:  # what each asks of the scenario, in its own settings class
            problem = m.scenario_problem(self)
            if problem is not None:
                raise ValueError(problem)
        return self
