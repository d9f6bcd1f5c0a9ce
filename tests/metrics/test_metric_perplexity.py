import math

import numpy as np
import pytest

from memorylab.metrics import perplexity


def test_uniform_logprobs_give_vocab_size():
    v = 50
    arrays = [np.full(n, math.log(1 / v)) for n in (1, 7, 30)]
    assert perplexity(arrays) == pytest.approx(v)


def test_token_weighted_not_mean_of_perplexities():
    # 1 token at p=1/2 and 3 tokens at p=1/8: exp(10 ln2 / 4) = 2**2.5, not (2 + 8) / 2.
    arrays = [np.array([math.log(0.5)]), np.full(3, math.log(1 / 8))]
    assert perplexity(arrays) == pytest.approx(2 ** 2.5)


def test_overflow_safe_and_long_corpus():
    assert perplexity([np.array([-1e6])]) == math.inf
    assert perplexity([np.array([0.0, -np.inf])]) == math.inf
    assert perplexity([np.full(200_000, -5.0)]) == pytest.approx(math.exp(5.0))
    assert perplexity([np.array([]), np.zeros(3)]) == 1.0  # an empty text contributes no tokens


def test_errors():
    with pytest.raises(ValueError, match="no tokens"):
        perplexity([])
    with pytest.raises(ValueError, match="no tokens"):
        perplexity([np.array([])])
    with pytest.raises(ValueError, match="NaN"):
        perplexity([np.array([np.nan])])
