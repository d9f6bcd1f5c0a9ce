"""The attacks on unlearned models, by the name a scenario's `attack:` gives: one line each.

Each entry names a settings class (memorylab/unlearn/attacks/attack.py). The scenario schema accepts exactly
these attacks, each validated by its own class; a new attack is its file plus one line here.
"""

from __future__ import annotations

from typing import Any

from memorylab.settings_registry import registered_class, registered_union
from memorylab.unlearn.attacks.attack import AttackSettings

ATTACKS: dict[str, str] = {
    "quantize": "memorylab.unlearn.attacks.quantize:Quantize",
    "relearn": "memorylab.unlearn.attacks.relearn:Relearn",
    "relearn_benign": "memorylab.unlearn.attacks.relearn:RelearnBenign",
    "rephrase": "memorylab.unlearn.attacks.rephrase:Rephrase",
    "in_context": "memorylab.unlearn.attacks.in_context:InContext",
}


def attack_class(name: str) -> type[AttackSettings]:
    """The settings class registered as `name`; a ValueError naming the known attacks otherwise."""
    return registered_class(ATTACKS, name, "attack", "attack")


def attack_union() -> Any:
    """The scenario field type of one attack: a union of every registered class, told apart by `attack`."""
    return registered_union(ATTACKS, "attack", "attack")
