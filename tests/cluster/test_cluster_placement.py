"""Placement groups on a real local Ray (2 CPUs): STRICT_PACK by default, the scenario's strategy when named."""

from __future__ import annotations

import time

import pytest
import ray

from memorylab.cluster import placement
from memorylab.cluster.placement import in_group, ready_group, remove_group, strict_pack_group
from memorylab.cluster.resources import bundle
from memorylab.errors import MemorylabError
from memorylab.schema.common import ActorResources
from memorylab.schema.unlearning import UnlearningScenario


@ray.remote
class _Where:
    def node(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def group(self) -> str:
        pg = ray.get_runtime_context().current_placement_group_id
        return None if pg is None else pg.hex()


def test_two_bundles_are_placed_and_actors_scheduled_into_them(ray_cluster):
    pg = strict_pack_group([{"CPU": 0.5}, {"CPU": 0.5}], timeout_s=30)
    actors = []
    try:
        assert ray.util.placement_group_table(pg)["state"] == "CREATED"
        assert ray.util.placement_group_table(pg)["strategy"] == "STRICT_PACK"
        options = {"num_cpus": 0.5}
        actors = [_Where.options(**in_group(options, pg, i)).remote() for i in range(2)]
        assert "scheduling_strategy" not in options  # in_group returns a new dict
        nodes = ray.get([a.node.remote() for a in actors])
        assert len(set(nodes)) == 1
        assert ray.get([a.group.remote() for a in actors]) == [pg.id.hex()] * 2
        with pytest.raises(ValueError, match="bundle_index 2"):
            in_group(options, pg, 2)
    finally:
        for a in actors:
            ray.kill(a)
        remove_group(pg)


def test_an_impossible_bundle_fails_with_a_sentence_in_time(ray_cluster):
    began = time.monotonic()
    with pytest.raises(MemorylabError, match=r"could not place the bundles \[\{'CPU': 1000\}\]"):
        strict_pack_group([{"CPU": 1000}], timeout_s=2)
    assert time.monotonic() - began < 10


def _table(pg) -> tuple[str, dict]:
    table = ray.util.placement_group_table(pg)
    return table["strategy"], table["bundles"]


@pytest.mark.parametrize("strategy, count", [("STRICT_PACK", 2), ("PACK", 2), ("SPREAD", 2), ("STRICT_SPREAD", 1)])
def test_the_strategy_and_bundles_reach_ray_as_given(ray_cluster, strategy, count):
    """(STRICT_SPREAD needs a node per bundle: one bundle on this one-node Ray.)"""
    pg = ready_group([{"CPU": 0.25}] * count, strategy, timeout_s=30)
    try:
        assert _table(pg) == (strategy, {i: {"CPU": 0.25} for i in range(count)})
    finally:
        remove_group(pg)


def test_gpu_shares_and_custom_resources_reach_ray_as_given(ray_cluster, monkeypatch):
    """This Ray has neither, so the group never places: it is refused with a sentence and removed, but Ray
    was asked for exactly the actor's bundle first."""
    asked = []

    def recording(bundles, strategy):
        pg = ray.util.placement_group(bundles, strategy=strategy)
        asked.append((pg, _table(pg)))
        return pg

    monkeypatch.setattr(placement, "placement_group", recording)
    res = ActorResources(num_cpus=0.25, num_gpus=0.5, resources={"big_mem": 2})
    with pytest.raises(MemorylabError, match=r"could not place the bundles .* \(PACK, "):
        ready_group([bundle(res)] * 2, "PACK", timeout_s=1)
    ((pg, table),) = asked
    assert table == ("PACK", {i: {"CPU": 0.25, "GPU": 0.5, "big_mem": 2.0} for i in range(2)})
    assert ray.util.placement_group_table(pg)["state"] == "REMOVED"


@pytest.mark.parametrize("strategy", [None, "PACK"])
def test_the_uld_pair_is_placed_by_the_scenario(ray_cluster, monkeypatch, strategy):
    """`placement: two_actors` puts target and assistant in one group: STRICT_PACK unless the scenario's
    resources.uld_pair_strategy names another, with one bundle of resources.model each (actors stubbed)."""
    from memorylab.runners.unlearning import run as unlearning
    from memorylab.unlearn.method import AssistantDecoding

    monkeypatch.setattr(unlearning, "create_model_actor", lambda role, *args, bundle_index, **kw: (role, bundle_index))
    monkeypatch.setattr(unlearning, "RemoteLM", lambda actor: actor)
    resources = {"model": {"num_cpus": 0.25}, **({"uld_pair_strategy": strategy} if strategy else {})}
    scenario = UnlearningScenario.model_validate({"name": "u", "kind": "unlearning", "resources": resources,
                                                  "methods": [{"method": "uld", "placement": "two_actors"}]})
    model = unlearning.Measured("target", AssistantDecoding("assistant", 1.0, 0.1, "two_actors"))
    _, actors, pg = unlearning.start_lm(scenario, model)
    try:
        assert actors == [("target", 0), ("assistant", 1)]
        assert _table(pg) == (strategy or "STRICT_PACK", {0: {"CPU": 0.25}, 1: {"CPU": 0.25}})
    finally:
        remove_group(pg)
