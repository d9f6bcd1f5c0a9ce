"""What an unlearning method is: a settings class (its settings and defaults, declared once) and the function
that unlearns with them.

A method is a pydantic settings class, validated when the scenario loads. `unlearn(job)` calls the function its
`runs_with` names, which turns the job's target into an unlearned model and returns a typed `UnlearnedModel`.
Most methods are a loss over forget (and retain) batches: they derive from `LossMethod`, whose function is the
shared loop (memorylab/unlearn/loop.py). A method that unlearns another way (ULD trains an assistant model) names
its own. Methods are registered by name in memorylab/unlearn/registry.py.

The function is named as a lazy "module:function" string, and the settings files import torch only inside the
losses: the scenario schema reads the settings classes, and `memorylab validate` must not pay for torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal, Optional, Protocol

from pydantic import Field

from memorylab.lazy import load_target
from memorylab.schema.common import Strict

if TYPE_CHECKING:
    import torch


class StepProbe(Protocol):
    """Measures a model while it unlearns (memorylab/runners/unlearning/progress.py): `hook` returns the loop's
    on_step(step), which at the probe's chosen steps measures `build_lm(batch_size)`, an LM-protocol view of
    `module`, the model being trained, and hands `module` back in the mode it found it in."""

    def hook(self, build_lm: Callable[[int], Any], module: Any, device: str) -> Callable[[int], None]: ...


@dataclass(frozen=True)
class AssistantDecoding:
    """How an unlearned model that is a logit difference (ULD) decodes: the target minus alpha times the
    assistant, with the relative-top filter r, in one actor or two (`placement`)."""

    path: str
    alpha: float
    r: float
    placement: str


@dataclass(frozen=True)
class UnlearnedModel:
    """What a method returns: where the model to measure lies, and what unlearning cost."""

    path: str  # a saved model folder (ULD: the target itself, unchanged)
    seconds: float
    final_loss: float
    assistant: Optional[AssistantDecoding] = None  # set when the model is the target minus an assistant


@dataclass(frozen=True)
class UnlearnJob:
    """One unlearning run of a method: plain data, so Ray ships it to the task that runs it."""

    target: str  # the trained target's folder (or hub id)
    tokenizer_dir: str
    forget_docs: list[Any]  # texts or memorylab.models.documents.Example
    retain_docs: list[Any]
    out_dir: str
    seed: int = 0
    device: str = "cpu"
    start: Optional[UnlearnedModel] = None  # a previous request's result to continue from (sustainability)
    show_progress: bool = True
    probe: Optional[StepProbe] = None


class MethodSettings(Strict):
    """Settings every method has: its label in reports, and the optimisation loop's."""

    method: str  # each method narrows it to its Literal name
    label: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]+$",
                                 description="the method's name in reports (default: the method); unique")
    steps: int = Field(40, ge=1)
    lr: float = Field(5e-4, gt=0, description="constant after the warm-up: unlearning runs are short")
    batch_size: int = Field(8, ge=1, description="forget rows per step, and as many retain rows where used")
    seq_len: int = Field(128, ge=8)
    warmup_steps: int = Field(0, ge=0, description="linear warm-up of the learning rate")
    grad_clip: Optional[float] = Field(1.0, gt=0, description="max gradient norm; None: no clipping")

    # In a sustainability chain each request continues from the previous result; "new": on the new request's
    # forget set alone, "all": on every request's so far (a method that must keep remembering them all).
    sequential_forget: ClassVar[Literal["new", "all"]] = "new"
    # Whether the method's retain documents also hold wrong answers to the forget questions.
    wants_wrong_answers: ClassVar[bool] = False
    # The function that unlearns with these settings: fn(settings, UnlearnJob) -> UnlearnedModel.
    runs_with: ClassVar[str]

    @property
    def name(self) -> str:
        return self.label or self.method

    def hparams(self) -> dict[str, Any]:
        """Every setting but the method's name and label, as reports list them."""
        return self.model_dump(exclude={"method", "label"})

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        """Why these settings cannot run in `scenario` (an UnlearningScenario), or None; checked at load."""
        return None

    def unlearn(self, job: UnlearnJob) -> UnlearnedModel:
        return load_target(self.runs_with)(self, job)


@dataclass
class UnlearnBatch:
    """One step's batches (collated: input_ids, attention_mask, labels) and, for a method that needs it, the
    frozen model from before unlearning."""

    forget: dict[str, Any]
    retain: Optional[dict[str, Any]] = None
    reference: Optional[Any] = None
    forget_reference_logps: Optional["torch.Tensor"] = None  # computed from `reference` on first use
    # One dict for every step of a run: what a loss computes once and keeps (RMU's target vector).
    cache: dict[str, Any] = field(default_factory=dict)

    def reference_logps(self) -> "torch.Tensor":
        """Each forget row's summed log-probability under the reference model."""
        if self.forget_reference_logps is None:
            if self.reference is None:
                raise ValueError("this loss needs the reference model's forget log-probabilities")
            import torch

            from memorylab.unlearn.sequence import sequence_logprobs

            with torch.no_grad():
                self.forget_reference_logps = sequence_logprobs(self.reference, self.forget)[0]
        return self.forget_reference_logps


class LossMethod(MethodSettings):
    """A method that is a loss over each step's batches, run by the shared loop."""

    needs_reference: ClassVar[bool] = False  # the loop keeps a frozen copy of the model before unlearning
    runs_with: ClassVar[str] = "memorylab.unlearn.loop:unlearn_saved"

    @property
    def uses_retain(self) -> bool:
        """Whether the loop draws retain batches (and needs retain documents)."""
        return False

    def trainable(self, model: Any) -> Optional[list[str]]:
        """The names of the parameters the loop updates; None: all of them."""
        return None

    def wants_reference(self) -> bool:
        """Whether the loop keeps a frozen copy of the model from before unlearning (UnlearnBatch.reference)."""
        return self.needs_reference

    def step_loss(self, model: Any, batch: UnlearnBatch) -> tuple["torch.Tensor", dict[str, float]]:
        """What the loop minimises at each step: `loss`, unless a mixin (spans.SpanScoped) adds to it."""
        return self.loss(model, batch)

    def loss(self, model: Any, batch: UnlearnBatch) -> tuple["torch.Tensor", dict[str, float]]:
        raise NotImplementedError


class RetainWeighted(LossMethod):
    """A loss method with a retain term, retain_weight x NLL(retain), which keeps what the model should know."""

    retain_weight: float = Field(1.0, ge=0, description="weight of the retain NLL; 0 drops the term")

    @property
    def uses_retain(self) -> bool:
        return self.retain_weight > 0

    def with_retain_term(self, model: Any, loss: "torch.Tensor", stats: dict[str, float],
                         batch: UnlearnBatch) -> "torch.Tensor":
        """loss + retain_weight x NLL(retain), recording retain_nll in stats; the loss alone at weight 0."""
        if not self.uses_retain:
            return loss
        if batch.retain is None:
            raise ValueError(f"{self.method} with retain_weight > 0 needs a retain batch")
        from memorylab.unlearn.sequence import nll

        retain_nll = nll(model, batch.retain)
        stats["retain_nll"] = float(retain_nll.detach())
        return loss + self.retain_weight * retain_nll
