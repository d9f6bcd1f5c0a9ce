"""ULD behind actors: one ModelActor hosting target + assistant, and two actors in lockstep, both give what the
in-process ULDLM gives (torch on one thread everywhere, so float sums split the same way)."""

from __future__ import annotations

import numpy as np
import pytest
import ray
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from memorylab.actors import RemoteLM, create_model_actor
from memorylab.cluster.placement import remove_group, strict_pack_group
from memorylab.decoding.uld import ULDLM
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import GenerationParams
from memorylab.schema.common import ActorResources, ModelSpec
from memorylab.unlearn.uld_assistant import build_assistant, merge_assistant
from tests.actors.test_actor_model import one_thread

TEXTS = ["Hello world.", "The secret passphrase of Ann Lee is", "a", "Question: Where was she born?\nAnswer:"]
ALPHA, R = 1.5, 0.3
GREEDY = GenerationParams(max_new_tokens=12)


@pytest.fixture(scope="module")
def assistant_dir(tiny_model_dir, tmp_path_factory) -> str:
    target = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assistant = build_assistant(target, num_layers=1, seed=0)
    with torch.no_grad():  # nonzero LoRA B matrices, so the assistant is not just the truncated target
        for name, p in assistant.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2, generator=torch.Generator().manual_seed(len(name)))
    path = tmp_path_factory.mktemp("assistant")
    merge_assistant(assistant).save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def local_uld(tiny_model_dir, assistant_dir) -> ULDLM:
    return ULDLM(HFLM.load(tiny_model_dir, device="cpu"), HFLM.load(assistant_dir, device="cpu"), alpha=ALPHA, r=R)


@pytest.fixture(scope="module")
def uld_actor(ray_cluster, tiny_model_dir, assistant_dir):
    handle = create_model_actor("target", tiny_model_dir, ModelSpec(), ActorResources(num_cpus=0.5),
                                assistant_source=assistant_dir, uld_alpha=ALPHA, uld_r=R)
    try:
        yield handle
    finally:
        ray.kill(handle)


@pytest.fixture(scope="module")
def pair(ray_cluster, tiny_model_dir, assistant_dir):
    """(target's actor, assistant's actor) in one STRICT_PACK group: the target's hosts LockstepULD."""
    pg = strict_pack_group([{"CPU": 0.5}, {"CPU": 0.5}], timeout_s=30)
    res = ActorResources(num_cpus=0.5)
    assistant = create_model_actor("assistant", assistant_dir, ModelSpec(), res, placement_group=pg,
                                   bundle_index=1)
    target = create_model_actor("target", tiny_model_dir, ModelSpec(), res, placement_group=pg, bundle_index=0,
                                assistant_actor=assistant, uld_alpha=ALPHA, uld_r=R)
    try:
        yield target, assistant
    finally:
        ray.kill(target)
        ray.kill(assistant)
        remove_group(pg)


@pytest.fixture(scope="module")
def lockstep(pair):
    return RemoteLM(pair[0])


def open_sessions(actor) -> int:
    return ray.get(actor.__ray_call__.remote(lambda self: len(self._sessions)))


def test_one_actor_hosts_uld(uld_actor, assistant_dir):
    info = ray.get(uld_actor.info.remote())
    assert info["assistant_source"] == assistant_dir
    assert (info["uld_alpha"], info["uld_r"]) == (ALPHA, R)


def test_one_actor_scores_like_in_process_uld(uld_actor, local_uld):
    remote = RemoteLM(uld_actor)
    with one_thread():
        expected = local_uld.token_logprobs(TEXTS)
    got = remote.token_logprobs(TEXTS)
    for g, e in zip(got, expected):
        np.testing.assert_array_equal(g, e)


def test_one_actor_generates_like_in_process_uld(uld_actor, local_uld):
    with one_thread():
        expected = local_uld.generate(TEXTS, GREEDY)
    assert RemoteLM(uld_actor).generate(TEXTS, GREEDY) == expected
    # And the combination really differs from the target alone somewhere (otherwise the test says little).
    with one_thread():
        assert expected != local_uld.target.generate(TEXTS, GREEDY) or ALPHA == 0


def test_one_actor_sequence_logits_are_the_combined_logits(uld_actor, local_uld):
    ids = torch.tensor([[local_uld.start_id] + local_uld.encode(["Hello world."])[0]])
    mask = torch.ones_like(ids)
    with one_thread(), torch.inference_mode():
        expected = local_uld.sequence_logits(ids, mask).numpy()
    np.testing.assert_array_equal(RemoteLM(uld_actor).sequence_logits(ids.numpy(), mask.numpy()), expected)


def test_lockstep_greedy_equals_in_process_uld(pair, lockstep, local_uld):
    with one_thread():
        expected = local_uld.generate(TEXTS, GREEDY)
    assert lockstep.generate(TEXTS, GREEDY) == expected
    # The steps went through the direct link (both actors are on this node), and generate() dropped the
    # caches it opened in the assistant's actor.
    target, assistant = pair
    assert ray.get(target.__ray_call__.remote(lambda self: type(self.lm.link).__name__)) == "SocketLink"
    assert open_sessions(assistant) == 0
    assert ray.get(target.info.remote())["assistant_actor"] is True


def test_lockstep_scores_like_in_process_uld(lockstep, local_uld):
    with one_thread():
        expected = local_uld.token_logprobs(TEXTS)
    for g, e in zip(lockstep.token_logprobs(TEXTS), expected):
        np.testing.assert_array_equal(g, e)


@pytest.mark.parametrize("placement", ["one_actor", "two_actors"])
def test_unlearning_runner_starts_either_uld_placement(ray_cluster, tiny_model_dir, assistant_dir, local_uld,
                                                       placement):
    """The runner's switch (`placement:` of a uld method) gives the same model either way, and frees all."""
    from memorylab.runners.unlearning.run import Measured, start_lm
    from memorylab.schema.unlearning import UnlearningScenario
    from memorylab.unlearn.method import AssistantDecoding

    scenario = UnlearningScenario.model_validate({
        "name": "u", "kind": "unlearning", "methods": [{"method": "uld", "placement": placement}],
        "resources": {"model": {"num_cpus": 0.25}}})  # the module's fixtures hold 1.5 of the 2 CPUs
    model = Measured(tiny_model_dir, AssistantDecoding(assistant_dir, ALPHA, R, placement))
    lm, actors, pg = start_lm(scenario, model)
    try:
        assert len(actors) == (2 if placement == "two_actors" else 1) and (pg is not None) == (len(actors) == 2)
        assert lm.generate(TEXTS, GREEDY) == local_uld.generate(TEXTS, GREEDY)
    finally:
        for actor in actors:
            ray.kill(actor)
        if pg is not None:
            remove_group(pg)


def test_the_link_and_actor_calls_give_the_assistant_the_same_steps(pair, local_uld):
    """An assistant on this node is reached over the socket; one on another node through actor calls
    (RayLink): the same logits either way, and a step of a session the assistant does not hold is a sentence."""
    from memorylab.decoding.assistant_link import LinkError, RayLink, SocketLink, connect

    _, assistant = pair
    link = connect(assistant)  # this driver shares the node with the actors
    assert isinstance(link, SocketLink)
    ids = np.array([[local_uld.start_id] + local_uld.encode(["Hello world."])[0]])
    mask = np.ones_like(ids)
    got = {}
    for name, way in (("socket", link), ("calls", RayLink(assistant))):
        way.send_step(f"check-{name}", ids, mask, None)
        got[name] = way.receive().numpy().copy()
        way.end(f"check-{name}")
    # (The link steps on LeanLlama, actor calls through transformers: the same logits up to float rounding.)
    np.testing.assert_allclose(got["socket"], got["calls"], rtol=1e-5, atol=1e-5)
    link.send_step("never-opened", ids[:, -1:], mask, None)
    with pytest.raises(LinkError, match="not open in this actor"):
        link.receive()
    link.close()


def test_a_lockstep_target_stepped_by_a_caller_ends_the_assistants_cache_with_its_own(pair, local_uld):
    target, assistant = pair
    ids = np.array([[local_uld.start_id] + local_uld.encode(["Hello world."])[0]])
    mask = np.ones_like(ids)
    logits = ray.get(target.step.remote("caller", ids, mask, None))
    with one_thread(), torch.inference_mode():
        expected, _ = local_uld.next_token_logits(torch.from_numpy(ids), torch.from_numpy(mask))
    np.testing.assert_allclose(logits, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert open_sessions(assistant) == 1
    RemoteLM(target).generate(TEXTS[:1], GREEDY)  # a generate meanwhile ends only its own sessions
    assert open_sessions(assistant) == 1
    ray.get(target.end_session.remote("caller"))
    assert open_sessions(assistant) == 0
