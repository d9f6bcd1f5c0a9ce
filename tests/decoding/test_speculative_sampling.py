"""Speculative sampling has the target's distribution: a chi-square test on a toy bigram model, whose joint
distribution of the first three tokens is known exactly, with a full and a trimmed drafter, temperature and
top_p; plus seeded reproducibility on the tiny LM."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from memorylab.decoding.loop import sampling_probs
from memorylab.decoding.speculative import speculative_decode
from memorylab.models.protocol import GenerationParams, SpeculativeParams

V, DRAWS, TOKENS = 5, 12000, 3


class Bigram:
    """Logits of the next token read from a table by the current token: a model without a cache."""

    def __init__(self, seed: int, columns: list[int] | None = None) -> None:
        self.table = torch.randn(V, V, generator=torch.Generator().manual_seed(seed)) * 1.5
        self.token_ids = None if columns is None else torch.tensor(columns)

    def verify(self, ids, mask, positions, past):
        return self.table[ids], past

    def step(self, ids, mask, positions, past):
        logits = self.table[ids[:, -1]]
        return (logits if self.token_ids is None else logits[:, self.token_ids]), past


def exact(target: Bigram, params: GenerationParams, first: int) -> np.ndarray:
    """P(t1, t2, t3) over all V^3 sequences, flattened in itertools.product order."""
    p = sampling_probs(target.table, params)
    p = (p / p.sum(-1, keepdim=True)).double().numpy()
    return np.array([p[first, a] * p[a, b] * p[b, c] for a, b, c in itertools.product(range(V), repeat=TOKENS)])


def observed(target: Bigram, drafter: Bigram, params: GenerationParams, first: int) -> np.ndarray:
    out, _ = speculative_decode(target.step, target.verify, drafter, [[first]] * DRAWS, params, pad_id=0,
                                eos_id=None)
    assert all(len(o) == TOKENS for o in out)
    codes = [a * V * V + b * V + c for a, b, c in out]
    return np.bincount(codes, minlength=V ** TOKENS)


def chi_square_p(counts: np.ndarray, probs: np.ndarray) -> float:
    if counts[probs == 0].sum():  # a sequence of probability 0 (e.g. cut by top_p) was drawn
        return 0.0
    # Cells expected fewer than 5 times are pooled into one (the test's approximation needs >= 5 per cell).
    expected = probs * counts.sum()
    small = expected < 5
    exp = np.append(expected[~small], expected[small].sum())
    obs = np.append(counts[~small], counts[small].sum())
    if exp[-1] == 0:  # only impossible cells were pooled (and none was drawn, see above)
        exp, obs = exp[:-1], obs[:-1]
    return float(chisquare(obs, exp * obs.sum() / exp.sum()).pvalue)


@pytest.mark.parametrize("columns, temperature, top_p, gamma", [
    (None, 1.0, 1.0, 2),
    (None, 0.7, 0.9, 4),  # gamma past the 3-token budget: the capped rows' path
    ([0, 2, 3], 1.0, 1.0, 3),  # a trimmed drafter never proposes 1 or 4: the residual must supply them
])
def test_speculative_sampling_has_the_target_distribution(columns, temperature, top_p, gamma):
    target, drafter = Bigram(seed=0), Bigram(seed=1, columns=columns)
    params = GenerationParams(max_new_tokens=TOKENS, temperature=temperature, top_p=top_p, seed=7,
                              speculative=SpeculativeParams(gamma=gamma))
    probs = exact(target, params, first=1)
    counts = observed(target, drafter, params, first=1)
    assert chi_square_p(counts, probs) > 1e-3
    # The test has power: the drafter's own distribution is far from what was drawn.
    draft_only = Bigram(seed=1)
    assert chi_square_p(counts, exact(draft_only, params, first=1)) < 1e-6


def test_sampling_is_seeded(target, drafter, prompts):
    target.drafter = drafter
    try:
        def run(seed):
            return target.generate(prompts[:24], GenerationParams(max_new_tokens=10, temperature=1.2, seed=seed,
                                                                   speculative=SpeculativeParams(gamma=3)))
        first = run(1)
        assert run(1) == first and run(2) != first
        assert 0 < target.speculative_stats.acceptance_rate < 1
    finally:
        target.drafter = None
