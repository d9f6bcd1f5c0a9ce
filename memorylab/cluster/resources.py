"""Scenario resources -> Ray options, unchanged: fractional GPUs and custom resources pass straight through."""

from __future__ import annotations

from typing import Any

from memorylab.errors import MemorylabError
from memorylab.schema.common import ActorResources


def actor_options(res: ActorResources) -> dict[str, Any]:
    options: dict[str, Any] = {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus}
    if res.resources:
        options["resources"] = dict(res.resources)
    return options


def bundle(res: ActorResources) -> dict[str, float]:
    """The placement-group bundle that holds one actor with these resources, by Ray's names ("CPU", "GPU",
    custom ones as written); amounts of 0 are left out, as Ray would ignore them.

    The actor's own options (actor_options) ask for exactly this, so it fits its bundle. An actor asking for
    nothing cannot have a bundle: Ray would refuse it with a ValueError, so we refuse it with a sentence."""
    if res.is_empty:
        raise MemorylabError(f"an actor with resources {res.model_dump()} asks for nothing, so it cannot be given "
                             "a placement-group bundle; give it num_cpus, num_gpus or a custom resource")
    amounts = {"CPU": res.num_cpus, "GPU": res.num_gpus, **res.resources}
    return {name: float(amount) for name, amount in amounts.items() if amount}


def torch_threads(res: ActorResources) -> int:
    """Intra-op threads for torch inside an actor: its CPU share, at least one.

    Fixing this from the scenario (not from the machine's core count) is what makes numbers identical
    whether Ray runs on 2 cores or 64: float reductions are ordered by the thread split."""
    return max(1, int(res.num_cpus))


def device_for(res: ActorResources, requested: str) -> str:
    """An actor without a GPU share must not touch CUDA even if the node has one (Ray hides it anyway).

    So "auto" means cpu without a GPU share, and an explicit CUDA device without one is refused here, with a
    sentence, instead of failing inside the actor as an ActorDiedError about missing CUDA devices."""
    if requested == "auto":
        return "cuda" if res.num_gpus > 0 else "cpu"
    if requested.startswith("cuda") and res.num_gpus <= 0:
        raise MemorylabError(f"device {requested!r} needs a GPU share, but the actor's resources give "
                             f"num_gpus: 0; set num_gpus (a fraction such as 0.5 shares a GPU) or use "
                             f"device: auto or cpu")
    return requested
