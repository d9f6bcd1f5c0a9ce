"""ULD, unlearning from logit difference (Ji et al. 2024, "Reversing the Forget-Retain Objectives"): the target
keeps its weights; an assistant (the target's first K layers, embeddings, norm and head, with LoRA) learns to
*remember* the forget set and to be uniform on the retain set, and the unlearned model decodes with
l_target - alpha * l_assistant under the relative-top filter r (memorylab/decoding/uld.py). The assistant is
built and trained in uld_assistant.py; the unlearned model is the target and its assistant together.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from memorylab.unlearn.method import MethodSettings


class ULD(MethodSettings):
    method: Literal["uld"] = "uld"
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

    # The assistant must keep remembering every earlier request, so a chain trains it on them all again.
    sequential_forget: ClassVar[Literal["new", "all"]] = "all"
    # Uniform on wrong answers to the forget questions too: the assistant must not learn the question format.
    wants_wrong_answers: ClassVar[bool] = True
    runs_with: ClassVar[str] = "memorylab.unlearn.uld_assistant:unlearn_with_assistant"

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        layers = scenario.model.tiny.num_layers if scenario.model.is_tiny else None
        if layers is not None and self.layers >= layers:
            return (f"uld layers ({self.layers}) must be fewer than the target's {layers} layers: the assistant "
                    "is the target's first K layers")
        if self.placement == "two_actors" and scenario.eval.speculative is not None:
            # LockstepULD combines two actors' logits one token at a time: it has no verification over drafts.
            return (f"method {self.name}: uld placement two_actors cannot decode speculatively; use placement "
                    "one_actor or drop eval.speculative")
        if self.placement == "two_actors" and scenario.resources.model.is_empty:
            return (f"method {self.name}: uld placement two_actors gives each actor a placement-group bundle of "
                    "resources.model, which asks for nothing (num_cpus 0, no GPU, no custom resources); give it "
                    "num_cpus or num_gpus, or use placement one_actor")
        return None
