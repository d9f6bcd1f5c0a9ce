"""Scenario resources -> Ray options, torch threads and devices (pure functions: no Ray needed)."""

from __future__ import annotations

import pytest

from memorylab.cluster.resources import actor_options, bundle, device_for, torch_threads
from memorylab.errors import MemorylabError
from memorylab.schema.common import ActorResources


def test_fractional_gpus_and_custom_resources_pass_unchanged():
    res = ActorResources(num_cpus=0.5, num_gpus=0.25, resources={"accelerator_type:H100": 0.001, "big_mem": 2})
    options = actor_options(res)
    assert options == {"num_cpus": 0.5, "num_gpus": 0.25,
                       "resources": {"accelerator_type:H100": 0.001, "big_mem": 2.0}}
    options["resources"]["big_mem"] = 9  # a copy: Ray options never alias the scenario
    assert res.resources["big_mem"] == 2


def test_defaults_give_one_cpu_no_gpu_and_no_custom_resources():
    assert actor_options(ActorResources()) == {"num_cpus": 1, "num_gpus": 0}
    assert actor_options(ActorResources(num_cpus=0)) == {"num_cpus": 0, "num_gpus": 0}


def test_a_bundle_holds_what_the_actor_asks_for():
    res = ActorResources(num_cpus=0.5, num_gpus=0.25, resources={"accelerator_type:H100": 0.001, "big_mem": 2})
    assert bundle(res) == {"CPU": 0.5, "GPU": 0.25, "accelerator_type:H100": 0.001, "big_mem": 2.0}
    assert bundle(ActorResources()) == {"CPU": 1.0}  # no GPU share: no GPU key (Ray drops zeros anyway)
    assert bundle(ActorResources(num_cpus=0, num_gpus=1)) == {"GPU": 1.0}


@pytest.mark.parametrize("res", [ActorResources(num_cpus=0), ActorResources(num_cpus=0, resources={"big_mem": 0})])
def test_an_actor_asking_for_nothing_has_no_bundle_and_says_so(res):
    """Ray refuses an empty bundle with a ValueError deep in placement_group(); this is one sentence first."""
    with pytest.raises(MemorylabError, match=r"asks for nothing, so it cannot be given a placement-group bundle"
                       r"; give it num_cpus, num_gpus or a custom resource$") as info:
        bundle(res)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("cpus, threads", [(0, 1), (0.25, 1), (0.5, 1), (1, 1), (1.9, 1), (2, 2), (7.5, 7)])
def test_torch_threads_is_the_cpu_share_at_least_one(cpus, threads):
    assert torch_threads(ActorResources(num_cpus=cpus)) == threads


@pytest.mark.parametrize("gpus, requested, device", [
    (0, "auto", "cpu"),
    (0.5, "auto", "cuda"),
    (1, "auto", "cuda"),
    (0, "cpu", "cpu"),
    (0.5, "cpu", "cpu"),  # a GPU share does not force CUDA on a model that asked for the CPU
    (0.5, "cuda", "cuda"),
    (2, "cuda:1", "cuda:1"),
])
def test_device_for(gpus, requested, device):
    assert device_for(ActorResources(num_gpus=gpus), requested) == device


@pytest.mark.parametrize("requested", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_share_is_a_sentence(requested):
    with pytest.raises(MemorylabError, match=f"device '{requested}' needs a GPU share"):
        device_for(ActorResources(num_gpus=0), requested)


def test_ray_accepts_the_options_for_actors_and_tasks():
    """Ray validates options when they are set, on the driver, without a running cluster."""
    import ray

    class Dummy:
        pass

    options = actor_options(ActorResources(num_cpus=0.5, num_gpus=0.25, resources={"big_mem": 0.5}))
    ray.remote(Dummy).options(**options)
    ray.remote(lambda: None).options(**options)
    assert not ray.is_initialized()
