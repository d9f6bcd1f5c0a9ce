"""OpenAI-style requests: a sampled request without a seed draws afresh; with one it repeats."""

from __future__ import annotations

from memorylab.serve.openai_bodies import CompletionRequest


def test_unseeded_sampling_draws_a_fresh_seed_and_a_given_one_is_kept():
    unseeded = CompletionRequest(model="m", prompt="x", temperature=0.8)
    seeds = {unseeded.params(8).seed for _ in range(4)}
    assert len(seeds) == 4 and all(isinstance(s, int) for s in seeds)
    assert CompletionRequest(model="m", prompt="x", temperature=0.8, seed=7).params(8).seed == 7
    assert CompletionRequest(model="m", prompt="x", temperature=0).params(8).seed is None  # greedy: no seed needed
