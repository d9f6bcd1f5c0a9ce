"""Blocks shared by every scenario kind: world, model, training, evaluation, resources, Ray.

Every model forbids unknown keys, so a typo fails at load time with the field's path instead of being
silently ignored deep in a run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, ClassVar, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator


def _names_a_folder(v: str) -> str:
    if set(v) <= {"."}:
        raise ValueError("must name a run folder, not '.' or '..'")
    return v


# A scenario's name is its run folder's name (runs/<name>), so it must be one safe path component.
RunName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$"), AfterValidator(_names_a_folder)]


# Seeds feed numpy (non-negative only), torch and Optuna (below 2**32): refused at load, not after training.
Seed = Annotated[int, Field(ge=0, lt=2**32, description="a non-negative integer below 2**32")]


class Strict(BaseModel):
    # No inf or NaN in any number: a YAML `.inf` would validate, then reach a worker as JSON `null`.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WorldConfig(Strict):
    """The synthetic memorization world: fictitious people split by person, plus canaries."""

    seed: Optional[Seed] = Field(None, description="defaults to the scenario seed")
    num_people: int = Field(48, ge=3, description="people generated in all")
    forget: int = Field(6, ge=1, description="people whose facts form the forget split")
    holdout: int = Field(6, ge=1, description="people never trained on: the non-members")
    paraphrases: int = Field(3, ge=1, le=5, description="templates each fact is rendered through")
    canaries: int = Field(4, ge=0, description="ghost sentences inserted into the forget split")
    canary_repeats: int = Field(8, ge=1, description="times each canary is inserted")
    canary_candidates: int = Field(999, ge=1, description="never-inserted secrets: the exposure reference set")
    canary_words: int = Field(4, ge=1, le=12, description="random words in each secret passphrase")

    @model_validator(mode="after")
    def _splits_fit(self) -> "WorldConfig":
        if self.forget + self.holdout >= self.num_people:
            raise ValueError(
                f"forget ({self.forget}) + holdout ({self.holdout}) must leave at least one retain person "
                f"out of num_people ({self.num_people})"
            )
        return self


class TinyModelConfig(Strict):
    """A Llama-architecture model small enough to train on a laptop CPU in minutes."""

    hidden_size: int = Field(128, ge=8)
    num_layers: int = Field(4, ge=1)
    num_heads: int = Field(4, ge=1)
    num_kv_heads: Optional[int] = Field(None, ge=1, description="defaults to num_heads")
    intermediate_size: int = Field(384, ge=8)
    max_position_embeddings: int = Field(256, ge=16)
    vocab_size: int = Field(2048, ge=300, description="size of the byte-level BPE trained on the corpus")
    tie_word_embeddings: bool = True

    @model_validator(mode="after")
    def _heads_divide(self) -> "TinyModelConfig":
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_heads ({self.num_heads})")
        kv = self.num_kv_heads or self.num_heads
        if self.num_heads % kv:
            raise ValueError(f"num_heads ({self.num_heads}) must be divisible by num_kv_heads ({kv})")
        return self


class ModelSpec(Strict):
    """Which model: `name: tiny` (built from `tiny` and trained here), an HF hub id, or a local path."""

    name: str = "tiny"
    tiny: TinyModelConfig = TinyModelConfig()
    backend: str = Field("hf", description="a name in memorylab.models.registry")
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto | cpu | cuda | cuda:N")

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        # Checked when the scenario loads, not when a model actor first looks it up (after training).
        from memorylab.models.registry import BACKENDS, unknown_backend

        if name not in BACKENDS:
            raise ValueError(unknown_backend(name))
        return name

    @property
    def is_tiny(self) -> bool:
        return self.name == "tiny"


class TrainConfig(Strict):
    """The trainer loop: AdamW, linear warm-up then cosine decay, gradient clipping."""

    steps: int = Field(600, ge=1)
    batch_size: int = Field(16, ge=1)
    seq_len: int = Field(128, ge=8)
    lr: float = Field(3e-3, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int = Field(30, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    checkpoint_every: int = Field(200, ge=1)
    loss: Literal["token", "row"] = Field(
        "token", description="token: the mean over every scored token of a batch; row: every row weighs the same "
                             "(an example's few answer tokens as much as a packed row of text)")


class SpeculativeConfig(Strict):
    """Speculative decoding of generations (memorylab.decoding.speculative): a small drafter sharing the model's
    tokenizer proposes `gamma` tokens, the model verifies them in one forward. Greedy outputs are the model's
    own, token for token; only the speed changes."""

    drafter: str = Field(..., description="a drafter folder or HF id; 'train' (tiny models): a 1-layer tiny drafter "
                                          "trained beside the model (a memory_agent generator; the target and "
                                          "retrain of memorization and unlearning runs)")
    gamma: int = Field(4, ge=1, le=16, description="drafted tokens per verification")
    adaptive: bool = Field(False, description="choose gamma each round from the measured acceptance rate")
    vocab: Optional[int] = Field(None, ge=1, description="VocabTrim: the drafter's head over its N most frequent "
                                                         "tokens (needs token_counts.json beside the drafter)")

    @field_validator("drafter")
    @classmethod
    def _absolute_when_a_folder(cls, v: str) -> str:
        # The drafter is loaded inside a Ray actor, whose working directory need not be this one.
        return str(Path(v).resolve()) if v != "train" and Path(v).exists() else v

    def params(self, drafter: Optional[str] = None):
        """The SpeculativeParams of this block (`drafter` replaces 'train' by the trained drafter's folder)."""
        from memorylab.models.protocol import SpeculativeParams

        return SpeculativeParams(drafter=drafter or self.drafter, gamma=self.gamma, adaptive=self.adaptive,
                                 max_gamma=max(8, self.gamma), vocab=self.vocab)


class EvalConfig(Strict):
    batch_size: int = Field(32, ge=1)
    verbmem_prefix_tokens: int = Field(12, ge=1)
    verbmem_max_new_tokens: int = Field(48, ge=1)
    knowmem_shots: int = Field(3, ge=0)
    knowmem_max_new_tokens: int = Field(16, ge=1)
    mia_min_k: float = Field(0.2, gt=0, le=1, description="fraction of lowest-prob tokens for Min-K% (0.2, the "
                                                          "Min-K% paper's; MUSE's PrivLeak uses 0.4)")
    speculative: Optional[SpeculativeConfig] = Field(
        None, description="VerbMem and KnowMem generations drafted and verified (same greedy outputs, faster)")


class ActorResources(Strict):
    """Ray resources for one actor; fractional GPUs let several roles share one device."""

    num_cpus: float = Field(1, ge=0)
    num_gpus: float = Field(0, ge=0)
    resources: dict[str, float] = Field(default_factory=dict, description="custom Ray resources")

    @property
    def is_empty(self) -> bool:
        """True when the actor asks Ray for nothing at all: it runs anywhere, but cannot hold a placement-group
        bundle (Ray refuses a bundle without a non-zero amount)."""
        return not (self.num_cpus or self.num_gpus or any(self.resources.values()))


# Ray's placement-group strategies, passed to ray.util.placement_group(strategy=...) as written: PACK and
# SPREAD are preferences (Ray falls back to any placement), the STRICT_ ones are requirements.
PlacementStrategy = Literal["STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD"]


class TrainerResources(Strict):
    """The actors and tasks of a kind that trains, by role: here the trainer (one Ray task per model trained).
    A kind lists exactly the roles its runner starts (a sweep checks each against a trial's reservation)."""

    trainer: ActorResources = ActorResources()


class Resources(TrainerResources):
    """Training, then measuring each model in its own ModelActor (`model`)."""

    model: ActorResources = ActorResources()


class RayConfig(Strict):
    address: Optional[str] = Field(None, description="None starts a local Ray; 'auto' or ray://host:port joins one")
    num_cpus: Optional[int] = Field(None, ge=1, description="CPUs of a local Ray (default: all)")


# Validation context key (model_validate(..., context={JOINS_RAY: True})): the run joins a Ray cluster whatever
# ray.address says (`--address` on the command line, or $RAY_ADDRESS), so no local Ray is started.
JOINS_RAY = "joins_ray"
IN_JOINED_RAY = {JOINS_RAY: True}  # the context of a scenario run inside another's Ray: a sweep's trials, an
# agent evaluation's agent, a served agent (its `ray:` section starts nothing)


def fits_in_local_ray(resources: BaseModel, ray: RayConfig, where: str, info: ValidationInfo) -> None:
    """Raise a ValueError naming the first ActorResources in `resources` (or `resources` itself) that asks
    more CPUs than the local Ray of `ray` will have; nothing to check when Ray is joined (ray.address, or
    JOINS_RAY in the validation context) or gets every CPU."""
    if ray.address is not None or ray.num_cpus is None or (info.context or {}).get(JOINS_RAY):
        return
    named = {where: resources} if isinstance(resources, ActorResources) else {
        f"{where}.{name}": getattr(resources, name) for name in type(resources).model_fields}
    for name, res in named.items():
        if isinstance(res, ActorResources) and res.num_cpus > ray.num_cpus:
            raise ValueError(f"{name}.num_cpus is {res.num_cpus:g}, more than the {ray.num_cpus} CPUs of the local "
                             "Ray that ray.num_cpus starts: it would wait forever; lower it or raise ray.num_cpus")


class ScenarioBase(Strict):
    """What every kind that trains models on the world shares; each kind adds its `kind` Literal and more."""

    name: RunName
    kind: str  # each kind narrows it to its Literal; declared here so it is listed second, after name
    description: str = ""
    seed: Seed = 0
    world: WorldConfig = WorldConfig()
    model: ModelSpec = ModelSpec()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    resources: TrainerResources = TrainerResources()
    ray: RayConfig = RayConfig()

    # Kinds whose runner trains eval.speculative's drafter 'train' beside its models (memorization, unlearning).
    trains_drafter: ClassVar[bool] = False

    @field_validator("ray")
    @classmethod
    def _fits_local_ray(cls, ray: RayConfig, info: ValidationInfo) -> RayConfig:
        """An actor or task asking more CPUs than the local Ray that ray.num_cpus starts would wait forever
        (Ray only prints that no node can fulfil it). GPUs are not checked: a local Ray counts the machine's."""
        if "resources" in info.data:  # validated before ray (declared first); absent when it was refused
            fits_in_local_ray(info.data["resources"], ray, "resources", info)
        return ray

    @model_validator(mode="after")
    def _trainable_drafter(self) -> "ScenarioBase":
        spec = self.eval.speculative
        if spec is None or spec.drafter != "train":
            return self
        if not self.trains_drafter:
            raise ValueError(f"eval.speculative.drafter 'train' is for memorization and unlearning runs, not "
                             f"{self.kind}: name a drafter folder or HF id (memorylab.models.drafter_training."
                             "train_drafter builds one for the tiny world)")
        if not self.model.is_tiny:
            raise ValueError("eval.speculative.drafter 'train' builds a tiny drafter for a tiny target "
                             f"(model.name: tiny), not for {self.model.name!r}: name a drafter folder or HF id")
        return self
