"""ModelActor + RemoteLM on a real local Ray: every protocol call gives what the local backend gives."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

import numpy as np
import pytest
import ray
import torch

from memorylab.actors import ModelActor, RemoteLM, create_model_actor
from memorylab.models.backends.hf import HFLM
from memorylab.models.protocol import LM, GenerationParams
from memorylab.schema.common import ActorResources, ModelSpec

ACTOR_NAME = "test-actor-model-target"
TEXTS = ["Hello world.", "The secret passphrase of Ann Lee is", "a", "Question: Where was she born?\nAnswer:"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """The actor runs torch on one thread (its 0.5-CPU share); so does the local reference, so float sums
    are split the same way and results can be compared exactly."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def target(ray_cluster, tiny_model_dir):
    handle = create_model_actor("target", tiny_model_dir, ModelSpec(), ActorResources(num_cpus=0.5),
                                name=ACTOR_NAME)
    try:
        yield handle
    finally:
        ray.kill(handle)


@pytest.fixture(scope="module")
def remote(target) -> RemoteLM:
    return RemoteLM(target)


@pytest.fixture(scope="module")
def local(tiny_model_dir) -> HFLM:
    return HFLM.load(tiny_model_dir, device="cpu")


def test_info_reports_role_threads_device_and_fractional_cpu(target, local, tiny_model_dir):
    info = ray.get(target.info.remote())
    assert info["role"] == "target"
    assert info["threads"] == 1  # max(1, int(0.5))
    assert info["device"] == "cpu"  # ModelSpec's device "auto" without a GPU share
    assert info["source"] == tiny_model_dir
    assert info["parameters"] == sum(p.numel() for p in local.model.parameters())
    # The name is registered in connect()'s namespace, and the actor holds exactly half a CPU.
    assert ray.get(ray.get_actor(ACTOR_NAME).info.remote())["role"] == "target"
    deadline = time.monotonic() + 10
    while True:
        used = ray.cluster_resources()["CPU"] - ray.available_resources().get("CPU", 0.0)
        if used == pytest.approx(0.5) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert used == pytest.approx(0.5)


def test_remote_lm_satisfies_the_protocol(remote):
    assert isinstance(remote, LM)


def test_tokens_match_local(remote, local):
    ids = remote.encode(TEXTS)
    assert ids == local.encode(TEXTS)
    assert remote.decode(ids) == local.decode(ids) == TEXTS


def test_scores_match_local_exactly(remote, local):
    got = remote.token_logprobs(TEXTS)
    with one_thread():
        want = local.token_logprobs(TEXTS)
        want_moments = local.token_logprob_moments(TEXTS)
        pairs = [("The secret passphrase of Ann Lee is", " alpha beta"), ("", "Hello"), ("Hi", " there")]
        want_ll = local.loglikelihood(pairs)
    assert len(got) == len(TEXTS)
    for g, w in zip(got, want):
        assert g.dtype == np.float64 and np.array_equal(g, w)
    for g, w in zip(remote.token_logprob_moments(TEXTS), want_moments):
        assert all(np.array_equal(a, b) for a, b in zip(g, w))
    got_ll = remote.loglikelihood(pairs)
    assert got_ll == want_ll
    assert all(np.isfinite(got_ll)) and all(x < 0 for x in got_ll)


@pytest.mark.parametrize("params", [
    GenerationParams(max_new_tokens=12),
    GenerationParams(max_new_tokens=12, stop=(" ",)),
    GenerationParams(max_new_tokens=12, temperature=0.8, top_p=0.9, seed=3),
], ids=["greedy", "stop", "sampled"])
def test_generate_matches_local(remote, local, params):
    prompts = TEXTS[:2] + TEXTS[3:]
    got = remote.generate(prompts, params)
    with one_thread():
        want = local.generate(prompts, params)
    assert got == want
    assert len(got) == len(prompts) and all(isinstance(t, str) for t in got)
    if params.stop:
        assert not any(" " in t for t in got)


def _full_logits(local: HFLM, ids: list[int]) -> np.ndarray:
    with torch.inference_mode():
        logits, _ = local.next_token_logits(torch.tensor([ids]))
    return logits.numpy()


def test_session_steps_match_the_full_sequence(remote, local):
    ids = [local.start_id] + local.encode(["The secret passphrase of"])[0]
    prompt, last = ids[:-1], ids[-1:]
    first, session = remote.next_token_logits(np.array([prompt]))
    np.testing.assert_allclose(first, _full_logits(local, prompt), rtol=1e-5, atol=1e-5)
    # One more token on the same session: the actor's cache carries the prompt.
    step, same = remote.next_token_logits(np.array([last]), past=session)
    assert same == session
    assert step.shape == (1, len(local.tokenizer))
    np.testing.assert_allclose(step, _full_logits(local, ids), rtol=1e-5, atol=1e-5)
    # After end_session the id starts afresh: the same token now sees no context.
    remote.end_session(session)
    fresh, _ = remote.next_token_logits(np.array([last]), past=session)
    np.testing.assert_allclose(fresh, _full_logits(local, last), rtol=1e-5, atol=1e-5)
    assert not np.allclose(fresh, step, atol=1e-4)
    remote.end_session(session)
    remote.end_session("never-started")  # unknown sessions are a no-op


def test_continuing_a_session_the_actor_does_not_hold_is_refused(remote, local):
    ids = [local.start_id] + local.encode(["The secret passphrase of"])[0]
    _, session = remote.next_token_logits(np.array([ids[:-1]]))
    remote.end_session(session)  # or a step that reaches another replica
    with pytest.raises(Exception, match="is not open in this actor: its mask covers"):
        remote.next_token_logits(np.array([ids[-1:]]), np.ones((1, len(ids)), dtype=np.int64), session)


def test_batched_left_padded_session_with_mask_and_positions(remote, local):
    """The way decoding/loop.py steps: left padding, a mask over past + new, positions of real tokens."""
    rows = [[local.start_id] + ids for ids in local.encode(["Hello world, this is", "a"])]
    nexts = [local.encode([" long"])[0][0], local.encode([" b"])[0][0]]
    width = max(len(r) for r in rows)
    ids = np.full((2, width), local.pad_id, dtype=np.int64)
    mask = np.zeros((2, width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, width - len(r):], mask[i, width - len(r):] = r, 1
    positions = np.clip(mask.cumsum(-1) - 1, 0, None)
    first, session = remote.next_token_logits(ids, mask, None, positions)
    mask2 = np.concatenate([mask, np.ones((2, 1), dtype=np.int64)], axis=1)
    step, _ = remote.next_token_logits(np.array(nexts)[:, None], mask2, session, positions[:, -1:] + 1)
    remote.end_session(session)
    for i, r in enumerate(rows):
        np.testing.assert_allclose(first[i], _full_logits(local, r)[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(step[i], _full_logits(local, r + [nexts[i]])[0], rtol=1e-4, atol=1e-4)


def test_bad_role_is_refused(ray_cluster, tiny_model_dir):
    with pytest.raises(ValueError, match="unknown role 'critic'"):
        create_model_actor("critic", tiny_model_dir, ModelSpec(), ActorResources(num_cpus=0.5))
    # Started directly, the actor's own check kills it and the first call says why.
    handle = ray.remote(ModelActor).options(num_cpus=0.25).remote("critic", tiny_model_dir, device="cpu")
    try:
        with pytest.raises(ray.exceptions.RayActorError, match="unknown role 'critic'"):
            ray.get(handle.info.remote(), timeout=60)
    finally:
        ray.kill(handle)


def test_cuda_without_a_gpu_share_is_refused_before_starting(ray_cluster, tiny_model_dir):
    from memorylab.errors import MemorylabError

    with pytest.raises(MemorylabError, match="needs a GPU share"):
        create_model_actor("target", tiny_model_dir, ModelSpec(device="cuda"), ActorResources(num_cpus=0.5))
