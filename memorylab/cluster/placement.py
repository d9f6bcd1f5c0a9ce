"""Placement groups for actors that must sit together.

ULD's target and assistant exchange logits every generated token (the assistant's are subtracted from the
target's before the next token is chosen), so when they run as two actors they should share a node: across
nodes each token would pay a network round trip, and a (B, V) float32 logits block per model. STRICT_PACK
guarantees one node for all bundles, or no placement at all; it is the default, and the scenario may name
another strategy (e.g. PACK, for two whole-GPU actors on nodes with one GPU each). Ray keeps an unplaceable
group pending forever, which we turn into an error with a sentence rather than a silent wait.
"""

from __future__ import annotations

from typing import Any

import ray
from ray.util.placement_group import PlacementGroup, placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from memorylab.errors import MemorylabError

# What each strategy demands, for the error when it cannot be met.
_DEMANDS = {"STRICT_PACK": "together on one node", "PACK": "on the cluster",
            "SPREAD": "on the cluster", "STRICT_SPREAD": "each on a node of its own"}


def ready_group(bundles: list[dict[str, float]], strategy: str = "STRICT_PACK",
                timeout_s: float = 60) -> PlacementGroup:
    """A placement group of `bundles` with Ray's `strategy` (passed as given), ready when returned.

    Raises MemorylabError naming the bundles when the cluster cannot place them within `timeout_s`; the
    pending group is removed then, so it does not hold a reservation (or wait for one) after the error."""
    if not bundles:
        raise ValueError("a placement group needs at least one bundle")
    pg = placement_group([dict(b) for b in bundles], strategy=strategy)
    ready, _ = ray.wait([pg.ready()], timeout=timeout_s)
    if not ready:
        remove_placement_group(pg)
        total: dict[str, float] = {}
        for b in bundles:
            for k, v in b.items():
                total[k] = total.get(k, 0.0) + v
        raise MemorylabError(
            f"could not place the bundles {bundles} {_DEMANDS.get(strategy, 'on the cluster')} ({strategy}, "
            f"{total} in all) within {timeout_s:g} s; the cluster offers {ray.cluster_resources()} - lower the "
            f"actors' num_cpus/num_gpus, choose another resources.uld_pair_strategy or host target and "
            f"assistant in one actor")
    return pg


def strict_pack_group(bundles: list[dict[str, float]], timeout_s: float = 60) -> PlacementGroup:
    """ready_group with STRICT_PACK: all bundles on one node."""
    return ready_group(bundles, "STRICT_PACK", timeout_s)


def in_group(options: dict[str, Any], pg: PlacementGroup, bundle_index: int) -> dict[str, Any]:
    """Ray actor options scheduled into bundle `bundle_index` of `pg` (a new dict; `options` is untouched).

    The actor's own num_cpus/num_gpus must fit inside that bundle: Ray reserves the bundle, then carves the
    actor's resources out of it."""
    if not 0 <= bundle_index < pg.bundle_count:
        raise ValueError(f"bundle_index {bundle_index} is outside the group's {pg.bundle_count} bundles")
    # Child tasks are not captured: an actor's own helpers should not eat into its neighbour's bundle.
    return {**options, "scheduling_strategy": PlacementGroupSchedulingStrategy(
        placement_group=pg, placement_group_bundle_index=bundle_index,
        placement_group_capture_child_tasks=False)}


def remove_group(pg: PlacementGroup) -> None:
    """Release the group's reservation (actors in it are killed by Ray)."""
    remove_placement_group(pg)
