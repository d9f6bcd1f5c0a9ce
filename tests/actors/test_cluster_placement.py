"""STRICT_PACK placement groups on a real local Ray (2 CPUs)."""

from __future__ import annotations

import time

import pytest
import ray

from memorylab.cluster.placement import in_group, remove_group, strict_pack_group
from memorylab.errors import MemorylabError


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
