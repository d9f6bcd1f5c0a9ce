"""The unlearning methods, by the name a scenario's `method:` gives: one line each.

Each entry names a settings class (memorylab/unlearn/method.py: a `LossMethod` for a loss over forget and
retain batches, or a `MethodSettings` with its own `unlearn`). The scenario schema accepts exactly these
methods, each validated by its own class; a new method is its file plus one line here (README, "Adding an
unlearning method").
"""

from __future__ import annotations

from typing import Any

from memorylab.settings_registry import registered_class, registered_union
from memorylab.unlearn.method import MethodSettings

METHODS: dict[str, str] = {
    "grad_ascent": "memorylab.unlearn.grad_ascent:GradAscent",
    "grad_diff": "memorylab.unlearn.grad_diff:GradDiff",
    "npo": "memorylab.unlearn.npo:NPO",
    "simnpo": "memorylab.unlearn.simnpo:SimNPO",
    "rmu": "memorylab.unlearn.rmu:RMU",
    "uld": "memorylab.unlearn.uld:ULD",
}


def method_class(name: str) -> type[MethodSettings]:
    """The settings class registered as `name`; a ValueError naming the known methods otherwise."""
    return registered_class(METHODS, name, "method", "unlearning method")


def method_settings(name: str, **settings: Any) -> MethodSettings:
    """The method `name` with these settings, validated (pydantic's ValidationError names a bad one)."""
    return method_class(name)(**settings)


def method_union() -> Any:
    """The scenario field type of one method: a union of every registered class, told apart by `method`."""
    return registered_union(METHODS, "method", "unlearning method")
