"""What an attack on an unlearned model is: a settings class (declared once, validated when the scenario loads)
whose `run` takes one model and says what the MUSE forget figures become under the attack.

An attack either changes the model's weights (quantization, relearning: a new model, measured as before) or
the way it is asked (rephrased questions, an in-context block: the same model, asked otherwise). That decides
the ceiling its recovery is measured against (`AttackSettings.changes`): the target as it is, for a weight
attack; the target asked the same way, for a prompt attack (what that wording can draw out of a model that
never forgot anything). The attack runs in a Ray task (memorylab/runners/unlearning/attacks.py) on an
`AttackSubject`, the model loaded in the task, and measures through an `AttackBench`, the batched evaluation
with only the forget figures.

Settings files import torch only inside `run`: the scenario schema reads them, and `memorylab validate` must
not pay for torch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, Optional, Sequence

from memorylab.schema.common import Strict

FIGURES = ("knowmem_forget", "verbmem_forget")  # what an attack measures, and its recovery is reported for


@dataclass
class AttackOutcome:
    """One attacked measurement: the figures after the attack, and (when the attack measures on other items
    than the plain evaluation, as relearning does) the same model's figures on those items before it."""

    after: dict[str, float]
    unattacked: Optional[dict[str, float]] = None


@dataclass
class AttackSubject:
    """A model under attack, loaded in the attack's task: the target's weights (an unlearned model's, or the
    target behind a ULD model) and, for ULD, the assistant with its decoding settings."""

    model: Any  # a transformers causal LM
    tokenizer: Any
    batch_size: int = 32
    device: str = "cpu"
    assistant: Any = None
    alpha: float = 1.0
    r: float = 0.1

    def lm(self) -> Any:
        """The LM-protocol view of the model as it now is (ULD: the target minus alpha times the assistant)."""
        from memorylab.models.backends.hf import HFLM

        target = HFLM(self.model, self.tokenizer, batch_size=self.batch_size, device=self.device)
        if self.assistant is None:
            return target
        from memorylab.decoding.uld import ULDLM

        assistant = HFLM(self.assistant, self.tokenizer, batch_size=self.batch_size, device=self.device)
        return ULDLM(target, assistant, alpha=self.alpha, r=self.r)

    def copy(self) -> "AttackSubject":
        """A copy whose weights an attack may change, leaving this one as loaded."""
        return AttackSubject(copy.deepcopy(self.model), self.tokenizer, self.batch_size, self.device,
                             copy.deepcopy(self.assistant), self.alpha, self.r)

    def networks(self) -> list[Any]:
        """Every network whose weights make up the model: the target, and the assistant of a ULD model."""
        return [self.model] + ([self.assistant] if self.assistant is not None else [])


@dataclass
class AttackBench:
    """What an attack measures with: the run's data (memorylab/runners/unlearning/data.py) and evaluation
    settings, and the seed every attack draws its choices from."""

    data: Any  # UnlearningData
    eval: Any  # EvalConfig, without speculative decoding (greedy outputs are the same either way)
    seed: int = 0

    def measure(self, lm: Any, units: Optional[Sequence[str]] = None,
                asked: Optional[Callable[[Any, Any, Optional[Sequence[str]]], Any]] = None,
                rewrite: Optional[Callable[[Any], Any]] = None) -> dict[str, float]:
        """The forget figures of `lm` on the forget `units` (None: all), on the evaluation data `asked` builds
        (default: the plain one), rewritten by `rewrite` (a prompt attack's change) when given."""
        from memorylab.evaluation import evaluate

        data = (asked or self.data.eval_data)(lm, self.eval, None if units is None else list(units))
        if rewrite is not None:
            data = rewrite(data)
        return evaluate(lm, data, self.eval, show_progress=False, only=FIGURES).metrics


class AttackSettings(Strict):
    """Settings every attack has; each attack narrows `attack` to its Literal name."""

    attack: str
    changes: ClassVar[Literal["weights", "prompts"]]

    def keys(self) -> list[str]:
        """The names its measurements have in report.json (`models.<label>.attacks.<key>`)."""
        return [self.attack]

    def scenario_problem(self, scenario: Any) -> Optional[str]:
        """Why this attack cannot run in `scenario` (an UnlearningScenario), or None; checked at load."""
        return None

    def run(self, subject: AttackSubject, bench: AttackBench) -> dict[str, AttackOutcome]:
        """Attack `subject` (its weights may be changed: the task loaded it for this attack alone)."""
        raise NotImplementedError
