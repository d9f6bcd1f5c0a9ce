"""eval.speculative in the memorization and unlearning runners: the drafter 'train', the setting every
evaluating ModelActor gets, and the report's figures (which drafter, how often each model kept its drafts).

Greedy speculative decoding emits the model's own tokens, so every metric is the one a plain run gives; what
the report adds is the drafter and, per model, its acceptance rate and generation speed. A drafter trained
on the target's corpus agrees best with the target; the retrain reference and unlearned models (which say
other things about the forget set) keep fewer of its drafts, which costs speed, never correctness.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

from memorylab.report import fmt, markdown_table

DRAFTER = "drafter"  # the drafter's name among a run's trained models: models/drafter/final


def trains_drafter(scenario: Any) -> bool:
    """Whether the run trains its drafter (eval.speculative.drafter 'train'), beside target and retrain."""
    spec = scenario.eval.speculative
    return spec is not None and spec.drafter == "train"


def with_drafter(scenario: Any, path: str) -> Any:
    """`scenario` with eval.speculative naming the trained drafter's folder, absolute since the actors that
    load it need not share the driver's working directory."""
    spec = scenario.eval.speculative.model_copy(update={"drafter": str(Path(path).resolve())})
    return scenario.model_copy(update={"eval": scenario.eval.model_copy(update={"speculative": spec})})


def actor_speculative(scenario: Any) -> Any:
    """create_model_actor's `speculative`: the drafter is loaded beside the model when the actor starts (a
    bad drafter fails there, not at the first generation). None: plain decoding."""
    spec = scenario.eval.speculative
    return None if spec is None else spec.params()


def actor_figures(actor: Any) -> Optional[dict[str, float]]:
    """The actor's speculative figures over every generation it ran (None when it decoded plainly)."""
    import ray  # here: report rendering imports this module and needs no Ray

    return ray.get(actor.speculative_stats.remote(total=True))


def saved_parameters(folder: str) -> Optional[int]:
    """Parameters of a model saved as safetensors (tied weights are stored once, as num_parameters counts
    them), read from the file's header; None for a hub id or another format."""
    files = sorted(Path(folder).glob("*.safetensors")) if Path(folder).is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    total = 0
    for file in files:
        with safe_open(str(file), "pt") as f:
            total += sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return total


def speculative_section(scenario: Any, trained: Optional[dict[str, Any]],
                        figures: dict[str, Optional[dict[str, float]]]) -> Optional[dict[str, Any]]:
    """report["speculative"]: the drafter (its folder, size and settings, and its training when this run
    trained it) and each model's figures (None where an evaluation came from a cache). `scenario` names the
    drafter's folder (with_drafter)."""
    spec = scenario.eval.speculative
    if spec is None:
        return None
    drafter = {"path": spec.drafter, "parameters": saved_parameters(spec.drafter), "gamma": spec.gamma,
               "adaptive": spec.adaptive, "vocab": spec.vocab, "trained_here": trained is not None}
    if trained is not None:
        drafter.update({k: trained[k] for k in ("steps", "final_loss", "seconds", "resumed_from")})
    return {"drafter": drafter, "models": figures}


def speculative_markdown(section: Optional[dict[str, Any]]) -> list[str]:
    """The report.md lines of a speculative section (none without one)."""
    if not section:
        return []
    d = section["drafter"]
    how = (f"trained here: {d['steps']} steps, final loss {fmt(d['final_loss'])}" if d["trained_here"]
           else "named in the scenario")
    keys = ("acceptance_rate", "tokens_per_round", "tokens_per_s", "emitted")
    rows = [[name, *(f[k] for k in keys)] if f else [name, "cached", "", "", ""]
            for name, f in section["models"].items()]
    return ["## Speculative decoding", "",
            f"Drafter `{d['path']}` ({d['parameters']} parameters; {how}); gamma {d['gamma']}"
            f"{' (adaptive)' if d['adaptive'] else ''}, vocab {d['vocab'] or 'full'}. Greedy outputs are the "
            "models' own, so every metric above is what plain decoding gives.", "",
            markdown_table(["model", "acceptance", "tokens / verification", "tokens / s", "tokens"], rows), ""]
